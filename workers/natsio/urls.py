"""NATS URLs: server lists, credentials in the user info, and the redacted form for messages.

Pure functions on strings (no nats-py), so settings and the CLI can use them
without importing the client.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit

__all__ = ["redact_url", "server_urls", "split_credentials", "with_credentials"]


def server_urls(url: str | list[str]) -> list[str]:
    """The servers of ``url``: a list as it is, a comma-separated string split (a cluster's servers)."""
    if not isinstance(url, str):
        return list(url)
    return [part.strip() for part in url.split(",") if part.strip()] or [url]


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` with ``user`` and ``password`` as its user info, quoted (any characters work).

    A comma-separated list of servers gets them on every server.
    """
    if "," in url:
        return ",".join(with_credentials(u, user, password) for u in server_urls(url))
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(url without user info, user, password)``, unquoted; ``None`` for what is absent.

    For a comma-separated list: every server without user info, and the first user found.
    """
    if "," in url:
        split = [split_credentials(u) for u in server_urls(url)]
        user, password = next(((u, p) for _, u, p in split if u), (None, None))
        return ",".join(plain for plain, _, _ in split), user, password
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    info, _, host = parts.netloc.rpartition("@")
    user, sep, password = info.partition(":")
    return (urlunsplit(parts._replace(netloc=host)), unquote(user) or None,
            unquote(password) if sep else None)


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``: the form every message and log uses."""
    if "," in url:
        return ",".join(redact_url(u) for u in server_urls(url))
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    info, _, host = parts.netloc.rpartition("@")
    user, sep, _ = info.partition(":")
    return urlunsplit(parts._replace(netloc=f"{user}{':***' if sep else ''}@{host}"))
