"""Settings: read once, from the environment and CLI flags, into a frozen object.

Nothing else in graphfleet reads the environment. Every setting has a
default that works on a fresh machine (embedded NATS, ``./data``); a malformed
value raises :class:`~events.errors.ConfigError` naming the variable, the bad
value and what it should look like.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from events.codec import DEFAULT_MAX_EVENT_BYTES
from events.errors import ConfigError

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the fleet's processes are configured by (env var in brackets)."""

    data_dir: Path = Path("data")  # FLEET_DATA_DIR
    nats_url: str = "nats://127.0.0.1:4222"  # FLEET_NATS_URL
    embedded_nats: bool = True  # FLEET_EMBEDDED_NATS: `fleet nats` runs a server
    stream: str = "SDLC"  # FLEET_STREAM
    subject_prefix: str = "sdlc"  # FLEET_SUBJECT_PREFIX
    stream_max_age_secs: int = 0  # FLEET_STREAM_MAX_AGE_SECS, 0 = keep forever
    stream_max_bytes: int = -1  # FLEET_STREAM_MAX_BYTES, -1 = unlimited
    dedup_window_secs: int = 120  # FLEET_DEDUP_WINDOW_SECS
    graph_stream: str = "GRAPH"  # FLEET_GRAPH_STREAM: graph-change events for downstream
    graph_subject_prefix: str = "graph"  # FLEET_GRAPH_SUBJECT_PREFIX: graph.<projection>.<kind>
    changes_max_age_secs: int = 0  # FLEET_CHANGES_MAX_AGE_SECS, 0 = keep forever
    changes_max_bytes: int = -1  # FLEET_CHANGES_MAX_BYTES, -1 = unlimited
    changes_batch_max: int = 1_000  # FLEET_CHANGES_BATCH_MAX: changes per publish round
    changes_poll_interval_ms: int = 100  # FLEET_CHANGES_POLL_INTERVAL_MS (notify wakes it sooner)
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES  # FLEET_MAX_EVENT_BYTES
    ingest_durable: str = "ingest"  # FLEET_INGEST_DURABLE
    ingest_batch_max: int = 20_000  # FLEET_INGEST_BATCH_MAX
    ingest_ack_wait_secs: int = 30  # FLEET_INGEST_ACK_WAIT_SECS: redelivery after a crash
    ingest_inflight_bytes: int = 32 * 1024 * 1024  # FLEET_INGEST_INFLIGHT_BYTES: requested, not yet received
    ingest_writer: str = "process"  # FLEET_INGEST_WRITER: process (second core) | thread
    log_sync: str = "full"  # FLEET_LOG_SYNC: full (fsync per commit) | normal
    broker_url: str | None = None  # FLEET_BROKER_URL: dramatiq broker, default the NATS URL
    worker_threads: int = 4  # FLEET_WORKER_THREADS
    projector_batch_max: int = 10_000  # FLEET_PROJECTOR_BATCH_MAX: log entries per LMDB txn
    projector_poll_ms: int = 200  # FLEET_PROJECTOR_POLL_MS: polling beside notifications
    projection_sync_ms: int = 1000  # FLEET_PROJECTION_SYNC_MS: projector fsync interval, 0 = every commit
    gitlab_token: str | None = None  # FLEET_GITLAB_TOKEN
    github_secret: str | None = None  # FLEET_GITHUB_SECRET
    api_host: str = "127.0.0.1"  # FLEET_API_HOST
    api_port: int = 8080  # FLEET_API_PORT
    max_body_bytes: int = 25 * 1024 * 1024  # FLEET_MAX_BODY_BYTES (webhooks)
    ready_max_lag: int = 10_000  # FLEET_READY_MAX_LAG: /readyz fails when a projection lags more
    heartbeat_interval_secs: int = 2  # FLEET_HEARTBEAT_INTERVAL_SECS
    heartbeat_stale_secs: int = 6  # FLEET_HEARTBEAT_STALE_SECS: older means the process is down
    stuck_after_secs: int = 30  # FLEET_STUCK_AFTER_SECS: backlog without progress this long = stuck
    expected_processes: str = "ingest,worker,api"  # FLEET_EXPECTED_PROCESSES: comma-separated, for `fleet health`
    failpoint: str | None = None  # FLEET_FAILPOINT: fault injection for tests only

    @property
    def expected(self) -> tuple[str, ...]:
        """The processes `fleet health` expects a heartbeat from."""
        return tuple(p.strip() for p in self.expected_processes.split(",") if p.strip())

    @property
    def log_path(self) -> Path:
        """The immutable log's SQLite file."""
        return self.data_dir / "log.db"

    @property
    def nats_store_dir(self) -> Path:
        """Where the embedded nats-server keeps JetStream data."""
        return self.data_dir / "nats"

    @property
    def projections_dir(self) -> Path:
        """Root of the LMDB projection environments."""
        return self.data_dir / "projections"

    def with_overrides(self, **overrides: Any) -> "Settings":
        """A copy with the non-None overrides applied (CLI flags win over env)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


_ENV_PREFIX = "FLEET_"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from ``FLEET_*`` variables, then apply ``overrides``."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = _ENV_PREFIX + f.name.upper()
        if name not in environ:
            continue
        values[f.name] = _parse(name, environ[name], f.default)
    if "FLEET_NATS_URL" in environ and "FLEET_EMBEDDED_NATS" not in environ:
        values["embedded_nats"] = False
    settings = Settings(**values).with_overrides(**overrides)
    _validate(settings)
    return settings


def _parse(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name}={raw!r} is not a boolean - use true or false")
    if isinstance(default, int):
        try:
            return int(raw.replace("_", ""))
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not an integer - e.g. {name}={default}") from None
    if isinstance(default, Path):
        return Path(raw)
    return raw if raw else default


#: Upper bounds: past them a value is a typo or a memory blow-up, not a tuning.
_MAXIMA = {
    "max_event_bytes": (64 << 20, "NATS carries at most 64 MiB per message"),
    "ingest_batch_max": (1_000_000, "a batch is held in memory until it commits"),
    "projector_batch_max": (1_000_000, "a batch is held in memory until it commits"),
    "changes_batch_max": (100_000, "a publish round is held in memory until it is acked"),
    "ingest_inflight_bytes": (1 << 30, "requested messages are buffered in memory"),
    "max_body_bytes": (1 << 30, "a webhook body is read into memory"),
}


def _validate(s: Settings) -> None:
    if not s.nats_url.startswith(("nats://", "tls://", "ws://", "wss://")):
        raise ConfigError(
            f"FLEET_NATS_URL={s.nats_url!r} is not a NATS URL - e.g. nats://127.0.0.1:4222"
        )
    for name in ("max_event_bytes", "ingest_batch_max", "dedup_window_secs",
                 "ingest_ack_wait_secs", "heartbeat_interval_secs", "heartbeat_stale_secs",
                 "stuck_after_secs", "changes_batch_max", "changes_poll_interval_ms",
                 "worker_threads", "projector_batch_max", "projector_poll_ms", "ingest_inflight_bytes"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"FLEET_{name.upper()}={getattr(s, name)} must be positive")
    for name, (most, why) in _MAXIMA.items():
        if getattr(s, name) > most:
            raise ConfigError(f"FLEET_{name.upper()}={getattr(s, name):_} is more than {most:_}: {why}")
    if s.heartbeat_stale_secs <= s.heartbeat_interval_secs:
        raise ConfigError(
            f"FLEET_HEARTBEAT_STALE_SECS={s.heartbeat_stale_secs} must be more than"
            f" FLEET_HEARTBEAT_INTERVAL_SECS={s.heartbeat_interval_secs}, or every process"
            " looks down between two heartbeats (e.g. three intervals)"
        )
    if s.projection_sync_ms < 0:
        raise ConfigError(f"FLEET_PROJECTION_SYNC_MS={s.projection_sync_ms} must be 0 (fsync every"
                          " commit) or a positive interval in milliseconds")
    if s.ingest_writer not in {"process", "thread"}:
        raise ConfigError(f"FLEET_INGEST_WRITER={s.ingest_writer!r} must be 'process' or 'thread'")
    if s.log_sync not in {"full", "normal"}:
        raise ConfigError(f"FLEET_LOG_SYNC={s.log_sync!r} must be 'full' or 'normal'")
    if not 0 < s.api_port < 65536:
        raise ConfigError(f"FLEET_API_PORT={s.api_port} is not a TCP port (1-65535)")
