"""Which members of a NATS cluster are reachable, for ``fleet health``.

Two views, because neither alone names a lost server at once: every server
of the configured list is probed with a TCP connect (a dead host shows
immediately, by address), and a replicated stream's cluster info gives the
members' server names with the time since its leader last heard from each
(``active``; nats-server marks a killed peer ``offline`` only much later).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from .client import redact_url, server_urls, split_credentials

__all__ = ["Member", "cluster_members"]


@dataclass(frozen=True)
class Member:
    """One cluster member as health sees it."""

    name: str  # server name (from the stream's cluster info) or address (from the server list)
    up: bool
    detail: str


async def _reachable(url: str, timeout_secs: float) -> str | None:
    """None when something listens at ``url``, else why not."""
    parts = urlsplit(url)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 4222), timeout_secs)
    except (OSError, TimeoutError) as e:
        return repr(e)
    writer.close()
    return None


async def cluster_members(js: JetStreamContext | None, url: str, *, stream: str,
                          lost_after_secs: float, timeout_secs: float = 1.0) -> list[Member]:
    """The members of the cluster behind ``url`` (a comma-separated list) and whether each is up.

    Empty for a single server that is not clustered. ``stream``'s cluster
    info (when ``js`` is given and the stream is replicated) names peers its
    leader has not heard from for ``lost_after_secs``.
    """
    servers = [split_credentials(u)[0] for u in server_urls(url)]
    members: list[Member] = []
    if len(servers) > 1:
        errors = await asyncio.gather(*(_reachable(s, timeout_secs) for s in servers))
        for server, error in zip(servers, errors, strict=True):
            shown = redact_url(server)
            members.append(Member(shown, error is None, "reachable" if error is None else
                                  f"cannot reach {shown}: {error}"))
    if js is None:
        return members
    try:
        info = await js.stream_info(stream)
    except (NotFoundError, TimeoutError):
        return members
    cluster = info.cluster
    if cluster is None or not cluster.replicas:
        return members
    if cluster.leader:
        members.append(Member(cluster.leader, True, f"leader of stream {stream}"))
    for peer in cluster.replicas:
        silent_secs = (peer.active or 0) / 1e9
        if peer.offline or silent_secs > lost_after_secs:
            members.append(Member(peer.name or "?", False,
                                  f"replica of stream {stream}: its leader {cluster.leader} has not"
                                  f" heard from it for {silent_secs:.1f}s"
                                  + (" (offline)" if peer.offline else "")))
        else:
            members.append(Member(peer.name or "?", True,
                                  f"replica of stream {stream}"
                                  + ("" if peer.current else f", {peer.lag or 0} behind")))
    return members
