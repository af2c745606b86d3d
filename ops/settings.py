"""Settings: read once, from the environment and CLI flags, into a frozen object.

Nothing else in graphfleet reads the environment. Every setting has a
default that works on a fresh machine (embedded NATS, ``./data``); a malformed
value raises :class:`~events.errors.ConfigError` naming the variable, the bad
value and what it should look like. ``nats_url`` is the URL every NATS client
connects with, credentials included (see :func:`with_nats_credentials`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from events.errors import ConfigError
from events.limits import DEFAULT_MAX_EVENT_BYTES
from workers.natsio.urls import redact_url, split_credentials, with_credentials

from .natsauth import AUTH_FILE, Scope, read_credentials

__all__ = ["Settings", "load_settings", "with_nats_credentials"]


@dataclass(frozen=True, kw_only=True, repr=False)
class Settings:
    """Everything the fleet's processes are configured by (env var in brackets)."""

    data_dir: Path = Path("data")  # FLEET_DATA_DIR
    nats_url: str = "nats://127.0.0.1:4222"  # FLEET_NATS_URL (user:password@ allowed)
    nats_user: str | None = None  # FLEET_NATS_USER: an external NATS's user (with FLEET_NATS_PASSWORD)
    nats_password: str | None = None  # FLEET_NATS_PASSWORD
    embedded_nats: bool = True  # FLEET_EMBEDDED_NATS: `fleet nats` runs a server
    startup_timeout_secs: int = 60  # FLEET_STARTUP_TIMEOUT_SECS: wait this long for NATS at start
    #: FLEET_STREAM_REPLICAS: copies of every stream and bucket the fleet creates (3 on a cluster)
    stream_replicas: int = 1
    nats_server_name: str | None = None  # FLEET_NATS_SERVER_NAME: this host's server in a cluster
    nats_cluster_name: str = "graphfleet"  # FLEET_NATS_CLUSTER_NAME: the same on every member
    nats_cluster_port: int = 0  # FLEET_NATS_CLUSTER_PORT: routes listen here; 0 = not clustered
    #: FLEET_NATS_CLUSTER_ROUTES: the other members' cluster addresses, comma-separated
    #: (nats-route://host:port)
    nats_cluster_routes: str = ""
    log_shipping: bool = False  # FLEET_LOG_SHIPPING: ingest ships committed rows to the LOG stream
    log_stream: str = "LOG"  # FLEET_LOG_STREAM: the replicated stream replicas are built from
    replica_name: str = "replica"  # FLEET_REPLICA_NAME: `fleet replica`'s heartbeat key (one per host)
    #: FLEET_LEASE_TTL_SECS: the log writer's lease lapses this long after its last renewal
    lease_ttl_secs: int = 10
    #: FLEET_API_REPLICA (`fleet api --replica`): the api serves this host's replica and judges
    #: readiness by it alone
    api_replica: bool = False
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
    #: FLEET_CHANGES_DIFF_MAX: a version change with more differences says `resync` instead (0: no diff)
    changes_diff_max: int = 250_000
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
    fold_budget_mb: int = 512  # FLEET_FOLD_BUDGET_MB: a rebuild's in-memory state before it writes
    #: FLEET_CATCHUP_LAG: events behind the log head from which the projector folds segments
    #: with coalesced change records instead of applying batches (0: never)
    catchup_lag: int = 20_000
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
    stop_grace_secs: int = 30  # FLEET_STOP_GRACE_SECS: `fleet up` sends SIGKILL to a process this long after SIGTERM
    testing: bool = False  # FLEET_TESTING: set by the test suite; enables FLEET_FAILPOINT
    failpoint: str | None = None  # FLEET_FAILPOINT: fault injection, honoured only with FLEET_TESTING

    @property
    def expected(self) -> tuple[str, ...]:
        """The processes `fleet health` expects a heartbeat from."""
        return tuple(p.strip() for p in self.expected_processes.split(",") if p.strip())

    @property
    def cluster_routes(self) -> tuple[str, ...]:
        """The other cluster members' route URLs (FLEET_NATS_CLUSTER_ROUTES)."""
        return tuple(r.strip() for r in self.nats_cluster_routes.split(",") if r.strip())

    @property
    def public_nats_url(self) -> str:
        """``nats_url`` with its password masked: the form for messages and logs."""
        return redact_url(self.nats_url)

    @property
    def log_path(self) -> Path:
        """The immutable log's SQLite file."""
        return self.data_dir / "log.db"

    @property
    def nats_store_dir(self) -> Path:
        """Where the embedded nats-server keeps JetStream data, its configuration and users."""
        return self.data_dir / "nats"

    @property
    def nats_auth_path(self) -> Path:
        """The embedded server's credentials file (written by its first start, mode 0600)."""
        return self.nats_store_dir / AUTH_FILE

    @property
    def nats_scope(self) -> Scope:
        """The names the embedded server's producer and subscriber permissions are cut to."""
        return Scope(subject_prefix=self.subject_prefix, graph_stream=self.graph_stream,
                     graph_subject_prefix=self.graph_subject_prefix)

    @property
    def projections_dir(self) -> Path:
        """Root of the LMDB projection environments."""
        return self.data_dir / "projections"

    def with_overrides(self, **overrides: Any) -> "Settings":
        """A copy with the non-None overrides applied (CLI flags win over env)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRETS and value is not None:
                value = "***"
            elif f.name in ("nats_url", "broker_url") and value is not None:
                value = redact_url(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"


_ENV_PREFIX = "FLEET_"
_SECRETS = {"nats_password", "gitlab_token", "github_secret"}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from ``FLEET_*`` variables, then apply ``overrides``.

    The result is validated, and its ``nats_url`` carries the credentials
    (:func:`with_nats_credentials`).
    """
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
    if not settings.testing and settings.failpoint:
        settings = replace(settings, failpoint=None)  # a test's kill switch does nothing in production
    _validate(settings)
    return with_nats_credentials(settings)


def with_nats_credentials(settings: Settings) -> Settings:
    """``settings`` whose ``nats_url`` carries the fleet's credentials, when they are known.

    In order: the URL's own user, FLEET_NATS_USER/FLEET_NATS_PASSWORD, and
    with the embedded server its credentials file (absent until the server's
    first start: a process that starts beside it calls this again once the
    server listens).
    """
    _, url_user, _ = split_credentials(settings.nats_url)
    if url_user:
        return settings
    if settings.nats_user is not None and settings.nats_password is not None:
        return replace(settings, nats_url=with_credentials(settings.nats_url, settings.nats_user,
                                                           settings.nats_password))
    if settings.embedded_nats:
        credentials = read_credentials(settings.nats_auth_path)
        if credentials is not None:
            return replace(settings, nats_url=with_credentials(settings.nats_url,
                                                               *credentials.user("fleet")))
    return settings


_DIGITS = re.compile(r"[+-]?[0-9][0-9_]*")


def _parse(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name}={raw!r} is not a boolean - use true or false")
    if isinstance(default, int):
        text = raw.strip()
        # ASCII digits only: int() also reads '١٢' (Arabic-Indic) and other scripts' digits.
        if not _DIGITS.fullmatch(text) or text.endswith("_") or "__" in text:
            raise ConfigError(f"{name}={raw!r} is not an integer - write ASCII digits,"
                              f" e.g. {name}={default}")
        return int(text.replace("_", ""))
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
    "worker_threads": (64, "as many as `fleet worker --threads` allows"),
    "dedup_window_secs": (7 * 86_400, "JetStream keeps every message id of the window in memory"),
    "stream_max_age_secs": (100 * 365 * 86_400, "a hundred years; 0 keeps messages forever"),
    "changes_max_age_secs": (100 * 365 * 86_400, "a hundred years; 0 keeps messages forever"),
    "ingest_ack_wait_secs": (86_400, "a day: a crashed ingest's messages come back after it"),
    "heartbeat_interval_secs": (3_600, "an hour"),
    "heartbeat_stale_secs": (86_400, "a day"),
    "stuck_after_secs": (7 * 86_400, "a week"),
    "startup_timeout_secs": (86_400, "a day; a supervisor restarts the process after that"),
    "changes_poll_interval_ms": (3_600_000, "an hour"),
    "projector_poll_ms": (3_600_000, "an hour"),
    "projection_sync_ms": (3_600_000, "an hour"),
    "ready_max_lag": (2**62, "no log gets that long"),
    "stream_max_bytes": (2**62, "no disk holds that much"),
    "changes_max_bytes": (2**62, "no disk holds that much"),
    "changes_diff_max": (2**62, "no graph has that many differences"),
    "fold_budget_mb": (1 << 20, "a terabyte of memory"),
    "catchup_lag": (2**62, "no log gets that long"),
    "stream_replicas": (5, "JetStream keeps at most 5 replicas of a stream"),
    "lease_ttl_secs": (3_600, "an hour: a lost writer's host holds ingest up that long"),
    "stop_grace_secs": (3_600, "an hour"),
}

_POSITIVE = ("max_event_bytes", "ingest_batch_max", "dedup_window_secs", "ingest_ack_wait_secs",
             "heartbeat_interval_secs", "heartbeat_stale_secs", "stuck_after_secs",
             "changes_batch_max", "changes_poll_interval_ms", "worker_threads", "projector_batch_max",
             "projector_poll_ms", "ingest_inflight_bytes", "max_body_bytes", "startup_timeout_secs",
             "fold_budget_mb", "stream_replicas", "stop_grace_secs", "lease_ttl_secs")

#: JetStream stream and consumer names: no '.', '*', '>', whitespace or path separators.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_nats_name(value: str) -> bool:
    """Whether ``value`` is a JetStream name (also a heartbeat key): 1-64 letters, digits, '-', '_'."""
    return _NAME.fullmatch(value) is not None
#: a subject prefix: one or more dot-separated tokens, no wildcards or whitespace
_PREFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
#: first tokens other traffic uses (LOG_APPENDED_SUBJECT, the dramatiq broker, inboxes)
_RESERVED = {"fleet", "dramatiq", "_INBOX", "_INBOX_fleet"}
_NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def _var(name: str) -> str:
    return _ENV_PREFIX + name.upper()


def _validate(s: Settings) -> None:
    for part in s.nats_url.split(","):
        if not part.strip():
            raise ConfigError(f"FLEET_NATS_URL={s.public_nats_url!r} has an empty server in its"
                              " list - separate servers with one comma, e.g."
                              " nats://10.0.0.1:4222,nats://10.0.0.2:4222")
        _check_url("FLEET_NATS_URL", part.strip(), _NATS_SCHEMES)
    if s.broker_url:
        for part in s.broker_url.split(","):
            _check_url("FLEET_BROKER_URL", part.strip(), None)
    _check_credentials(s)
    _check_data_dir(s.data_dir)
    for name in _POSITIVE:
        if getattr(s, name) <= 0:
            raise ConfigError(f"{_var(name)}={getattr(s, name)} must be positive")
    for name, (most, why) in _MAXIMA.items():
        if getattr(s, name) > most:
            raise ConfigError(f"{_var(name)}={getattr(s, name):_} is more than {most:_}: {why}")
    for name in ("stream_max_age_secs", "changes_max_age_secs"):
        if getattr(s, name) < 0:
            raise ConfigError(f"{_var(name)}={getattr(s, name)} must be 0 (keep forever) or"
                              " a positive number of seconds")
    for name in ("stream_max_bytes", "changes_max_bytes"):
        if getattr(s, name) == 0 or getattr(s, name) < -1:
            raise ConfigError(f"{_var(name)}={getattr(s, name)} must be -1 (unlimited) or"
                              " a positive number of bytes")
    for name in ("stream_max_age_secs", "changes_max_age_secs"):
        if 0 < getattr(s, name) < s.dedup_window_secs:
            raise ConfigError(f"FLEET_DEDUP_WINDOW_SECS={s.dedup_window_secs} is longer than"
                              f" {_var(name)}={getattr(s, name)}: JetStream refuses a duplicate window"
                              " longer than the stream keeps messages - shorten the window")
    if s.changes_diff_max < 0:
        raise ConfigError(f"FLEET_CHANGES_DIFF_MAX={s.changes_diff_max} must be 0 (never send a"
                          " diff: subscribers resync) or more (the largest diff sent at a version change)")
    if s.catchup_lag < 0:
        raise ConfigError(f"FLEET_CATCHUP_LAG={s.catchup_lag} must be 0 (always apply batches) or more"
                          " (events behind the log head from which the projector folds segments)")
    if s.ready_max_lag < 0:
        raise ConfigError(f"FLEET_READY_MAX_LAG={s.ready_max_lag} must be 0 or more (events a"
                          " projection may lag behind the log before /readyz fails)")
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
    _check_names(s)
    _check_cluster(s)


def _check_cluster(s: Settings) -> None:
    if s.nats_server_name is not None and not _NAME.fullmatch(s.nats_server_name):
        raise ConfigError(f"FLEET_NATS_SERVER_NAME={s.nats_server_name!r} is not a server name - use"
                          " 1-64 letters, digits, '-' or '_', one per host, e.g. nats-a")
    if not _NAME.fullmatch(s.nats_cluster_name):
        raise ConfigError(f"FLEET_NATS_CLUSTER_NAME={s.nats_cluster_name!r} is not a cluster name -"
                          " use 1-64 letters, digits, '-' or '_', the same on every member")
    if not 0 <= s.nats_cluster_port < 65536:
        raise ConfigError(f"FLEET_NATS_CLUSTER_PORT={s.nats_cluster_port} is not a TCP port"
                          " (1-65535, or 0 for a server outside any cluster)")
    routes = s.cluster_routes
    for route in routes:
        _check_url("FLEET_NATS_CLUSTER_ROUTES", route, ("nats-route", "nats"))
    if not s.nats_cluster_port:
        if routes:
            raise ConfigError("FLEET_NATS_CLUSTER_ROUTES is set without FLEET_NATS_CLUSTER_PORT -"
                              " set the port this server's routes listen on (e.g. 6222)")
        return
    if not routes:
        raise ConfigError(f"FLEET_NATS_CLUSTER_PORT={s.nats_cluster_port} is set without"
                          " FLEET_NATS_CLUSTER_ROUTES - list the other members, e.g."
                          " nats-route://10.0.0.2:6222,nats-route://10.0.0.3:6222")
    if s.nats_server_name is None:
        raise ConfigError("FLEET_NATS_CLUSTER_PORT is set without FLEET_NATS_SERVER_NAME - a"
                          " JetStream cluster needs a distinct name per server, e.g. nats-a")


def _check_url(name: str, url: str, schemes: tuple[str, ...] | None) -> None:
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise ConfigError(f"{name}={shown!r} is not a URL ({e}) - e.g. nats://127.0.0.1:4222") from None
    if schemes is not None and parts.scheme not in schemes:
        raise ConfigError(f"{name}={shown!r} is not a NATS URL - e.g. nats://127.0.0.1:4222")
    if not parts.scheme:
        raise ConfigError(f"{name}={shown!r} has no scheme - e.g. nats://127.0.0.1:4222")
    try:
        port = parts.port
    except ValueError:
        port_text = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        raise ConfigError(f"{name}={shown!r} has port {port_text}, not a TCP port (1-65535)"
                          " - e.g. nats://127.0.0.1:4222") from None
    if port == 0:
        raise ConfigError(f"{name}={shown!r} has port 0, not a TCP port (1-65535)")
    if schemes is not None and not parts.hostname:
        raise ConfigError(f"{name}={shown!r} names no host - e.g. nats://127.0.0.1:4222")


def _check_credentials(s: Settings) -> None:
    if (s.nats_user is None) != (s.nats_password is None):
        given, missing = (("FLEET_NATS_USER", "FLEET_NATS_PASSWORD") if s.nats_user is not None
                          else ("FLEET_NATS_PASSWORD", "FLEET_NATS_USER"))
        raise ConfigError(f"{given} is set without {missing} - set both, or neither")
    if s.nats_user is None:
        return
    if split_credentials(s.nats_url)[1]:
        raise ConfigError(f"FLEET_NATS_URL carries a user already ({redact_url(s.nats_url)}) and"
                          " FLEET_NATS_USER is set too - give the credentials once")
    if s.embedded_nats:
        raise ConfigError("FLEET_NATS_USER/FLEET_NATS_PASSWORD are for an external NATS (set"
                          " FLEET_NATS_URL); the embedded server's users are in"
                          f" {s.nats_auth_path} - `fleet nats credentials` prints them")


def _check_data_dir(data_dir: Path) -> None:
    path = data_dir
    while not path.exists() and path != path.parent:
        path = path.parent
    if path.exists() and not path.is_dir():
        raise ConfigError(f"FLEET_DATA_DIR={str(data_dir)!r} is not a directory ({path} is a file"
                          " or a device) - point FLEET_DATA_DIR or --data-dir at a directory"
                          " (created when missing)")


def _check_names(s: Settings) -> None:
    for name in ("stream", "graph_stream", "ingest_durable", "log_stream", "replica_name"):
        value = getattr(s, name)
        if not _NAME.fullmatch(value):
            raise ConfigError(f"{_var(name)}={value!r} is not a JetStream name - use 1-64 letters,"
                              " digits, '-' or '_' (no '.', '*', '>' or spaces)")
    if s.log_stream in (s.stream, s.graph_stream):
        raise ConfigError(f"FLEET_LOG_STREAM={s.log_stream!r} is the name of another of the fleet's"
                          " streams (FLEET_STREAM or FLEET_GRAPH_STREAM) - shipped rows need their own")
    if s.stream == s.graph_stream:
        raise ConfigError(f"FLEET_STREAM={s.stream!r} is FLEET_GRAPH_STREAM too - the events and"
                          " the graph changes need streams of their own")
    for name in ("subject_prefix", "graph_subject_prefix"):
        value = getattr(s, name)
        if not _PREFIX.fullmatch(value):
            raise ConfigError(f"{_var(name)}={value!r} is not a subject prefix - use dot-separated"
                              " tokens of letters, digits, '-' or '_' (no '*', '>' or spaces),"
                              " e.g. sdlc or acme.sdlc")
        if value.split(".")[0] in _RESERVED:
            raise ConfigError(f"{_var(name)}={value!r} starts with a reserved token (one of"
                              f" {', '.join(sorted(_RESERVED))}) - choose another prefix")
    events, graph = s.subject_prefix.split("."), s.graph_subject_prefix.split(".")
    shorter = min(len(events), len(graph))
    if events[:shorter] == graph[:shorter]:
        raise ConfigError(f"FLEET_SUBJECT_PREFIX={s.subject_prefix!r} and FLEET_GRAPH_SUBJECT_PREFIX="
                          f"{s.graph_subject_prefix!r} overlap: the SDLC and GRAPH streams would"
                          " claim the same subjects - make them differ in their first token")
