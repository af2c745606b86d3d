"""Helpers for the tests (no tests here): imported as ``from tests.support.<module> import <name>``.

Fixtures are not helpers: they live in the conftest.py files.
"""
