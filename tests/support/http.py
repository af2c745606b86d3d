"""A plain HTTP GET for tests that talk to a running api process."""

from __future__ import annotations

import urllib.error
import urllib.request


def get(url: str, *, timeout: float = 10) -> tuple[int, bytes]:
    """``(status, body)``; an HTTP error's own status and body, ``(0, b"")`` when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""
