"""Canonical events, their codec and upcasters, the immutable log, webhook adapters.

This package is the innermost layer: it imports only the standard library,
msgspec and sqlite-utils.
"""
