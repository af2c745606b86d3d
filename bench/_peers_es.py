"""The `eventsourcing` (9.5.x) side of bench/peers.py: record, then project.

Recording follows the library's documentation: an :class:`Application` whose
aggregates are the SDLC entities (one aggregate per group, project, user,
label, milestone, issue, merge request, comment; a project's pushes and refs
go to its ``Repository`` aggregate), with one event class per canonical event
type. Each canonical event is triggered on its entity's aggregate; the
aggregates are kept in memory (the repository is never asked, which is the
generous choice) and saved either one event at a time (``app.save(aggregate)``)
or in batches (the pending events of many aggregates collected in log order,
then one ``app.save(*events)``: one SQLite transaction per batch).

Projection follows the library's ``eventsourcing.projection`` module: a
:class:`Projection` whose ``process_event`` updates a materialised view that
is a :class:`TrackingRecorder` (the view's update and its tracking record
commit in one transaction, one event at a time, as the module prescribes).
``ProjectionRunner`` cannot be used with SQLite: ``SQLiteApplicationRecorder``
does not implement ``subscribe()`` (the docs say so), so the events are pulled
with the library's own ``NotificationLogReader`` - what its ``Follower`` does
- and handed to the projection one by one.

The view holds the same graph as graphfleet's projection: it runs the same
pure apply step and overlay semantics (``projections.fold.apply``,
``projections.fold.overlay``), so the figures compare the frameworks and their
storage, not two different graph models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from uuid import NAMESPACE_URL, uuid5

import msgspec
from eventsourcing.application import Application
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import InfrastructureFactory, Tracking, TrackingRecorder
from eventsourcing.popo import POPOTrackingRecorder
from eventsourcing.projection import Projection
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.system import NotificationLogReader

from events.codec import decode_event
from events.types import EVENT_TYPES, Event
from projections.fold.apply import apply
from projections.fold.memory import MemoryGraph
from projections.fold.overlay import Overlay
from projections.store.writeset import EDGE_BYTES, WriteSet, decode_props, encode_props

__all__ = [
    "SdlcApp",
    "GraphProjection",
    "SQLiteGraphView",
    "POPOGraphView",
    "SaveResult",
    "ProjectResult",
    "save_per_event",
    "save_batched",
    "project",
    "sqlite_env",
]

_NAMESPACE = uuid5(NAMESPACE_URL, "https://graphfleet.invalid/bench/peers")
_to_builtins = msgspec.to_builtins
_json = msgspec.json.encode


def _camel(tag: str) -> str:
    return "".join(part.capitalize() for part in tag.replace(".", "_").split("_"))


# --- the write model ------------------------------------------------------


class SdlcEntity(Aggregate):
    """An SDLC entity; its history is the canonical events about it."""

    def __init__(self) -> None:
        self.last_type: str | None = None
        self.changes = 0

    class Event(Aggregate.Event):
        """A canonical event about this entity (its fields, as JSON-ready values)."""

        data: dict

        def apply(self, aggregate: "SdlcEntity") -> None:
            aggregate.last_type = self.TAG  # type: ignore[attr-defined]
            aggregate.changes += 1


#: canonical tag -> (event class for an existing aggregate, event class that creates it)
EVENT_CLASSES: dict[str, tuple[type, type]] = {}
for _tag in EVENT_TYPES:
    _name = _camel(_tag)
    _event = type(_name, (SdlcEntity.Event,), {
        "TAG": _tag, "__module__": __name__, "__qualname__": f"SdlcEntity.{_name}"})
    _first = type(_name + "First", (SdlcEntity.Created, SdlcEntity.Event), {
        "TAG": _tag, "__module__": __name__, "__qualname__": f"SdlcEntity.{_name}First"})
    setattr(SdlcEntity, _name, _event)
    setattr(SdlcEntity, _name + "First", _first)
    EVENT_CLASSES[_tag] = (_event, _first)


class Group(SdlcEntity):
    """A group."""


class Project(SdlcEntity):
    """A project's own settings and membership of its group."""


class Repository(SdlcEntity):
    """A project's repository: pushes, branches and tags."""


class User(SdlcEntity):
    """A user and their memberships."""


class Label(SdlcEntity):
    """A label."""


class Milestone(SdlcEntity):
    """A milestone."""


class Issue(SdlcEntity):
    """An issue."""


class MergeRequest(SdlcEntity):
    """A merge request."""


class Comment(SdlcEntity):
    """A comment."""


#: tag prefix -> (aggregate class, id field of the canonical event)
_ENTITY = {
    "group": (Group, "group_id"), "project": (Project, "project_id"), "user": (User, "user_id"),
    "member": (User, "user_id"), "label": (Label, "label_id"),
    "milestone": (Milestone, "milestone_id"), "issue": (Issue, "issue_id"),
    "merge_request": (MergeRequest, "merge_request_id"), "comment": (Comment, "comment_id"),
    "commits": (Repository, "project_id"), "ref": (Repository, "project_id"),
}


class SdlcApp(Application):
    """The event-sourced application that records the SDLC events."""

    name = "SdlcApp"
    log_section_size = 1000  # notification log sections the projection pulls


def sqlite_env(db_path: Path) -> dict[str, str]:
    """Environment for SQLite persistence in a file database."""
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db_path)}


class Recorder:
    """Turns canonical events into aggregate events on in-memory aggregates."""

    def __init__(self) -> None:
        self.aggregates: dict[tuple, SdlcEntity] = {}

    def record(self, event: Event) -> SdlcEntity:
        """Trigger ``event`` on its entity's aggregate (creating it on first sight)."""
        tag = event.__struct_config__.tag
        cls, id_field = _ENTITY[tag.partition(".")[0]]
        native = getattr(event, id_field)
        key = (cls, event.source, native)
        data = _to_builtins(event)
        del data["type"]
        agg = self.aggregates.get(key)
        regular, first = EVENT_CLASSES[tag]
        if agg is None:
            agg = cls._create(first, id=uuid5(_NAMESPACE, f"{cls.__name__}:{event.source}:{native}"),
                              timestamp=event.occurred_at, data=data)
            self.aggregates[key] = agg
        else:
            agg.trigger_event(regular, timestamp=event.occurred_at, data=data)
        return agg


@dataclass
class SaveResult:
    """How a save run went."""

    events: int
    secs: float
    aggregates: int
    batches: int

    @property
    def rate(self) -> float:
        return self.events / self.secs if self.secs else 0.0


def save_per_event(events: Sequence[Event], db_path: Path) -> SaveResult:
    """``app.save(aggregate)`` after every event: one transaction per event."""
    app = SdlcApp(env=sqlite_env(db_path))
    rec = Recorder()
    started = time.perf_counter()
    for event in events:
        app.save(rec.record(event))
    secs = time.perf_counter() - started
    app.close()
    return SaveResult(len(events), secs, len(rec.aggregates), len(events))


def save_batched(events: Sequence[Event], db_path: Path, batch: int) -> SaveResult:
    """Save ``batch`` canonical events at a time, in one ``app.save()`` call each.

    The aggregates' pending events are collected in log order and the events
    saved, so the notification log keeps the canonical order the projection
    needs. (``app.save(*aggregates)`` groups a batch's events by aggregate,
    which changes the projected graph, and measured no faster.)
    """
    app = SdlcApp(env=sqlite_env(db_path))
    rec = Recorder()
    record = rec.record
    batches = 0
    started = time.perf_counter()
    for lo in range(0, len(events), batch):
        pending: list = []
        for event in events[lo:lo + batch]:
            pending.extend(record(event).collect_events())
        app.save(*pending)
        batches += 1
    secs = time.perf_counter() - started
    app.close()
    return SaveResult(len(events), secs, len(rec.aggregates), batches)


# --- the read model: a graph view -------------------------------------------


def _canonical(domain_event: SdlcEntity.Event) -> Event:
    """The canonical event an aggregate event carries."""
    return decode_event(_json({**domain_event.data, "type": domain_event.TAG}))  # type: ignore[attr-defined]


class GraphView(TrackingRecorder):
    """A materialised graph view: nodes, edges, derived keys, and tracking."""

    def apply_event(self, event: Event, tracking: Tracking) -> None:
        """Apply one event's graph mutations and record ``tracking`` atomically."""
        raise NotImplementedError

    def counts(self) -> tuple[int, int]:
        """(nodes, edges) in the view."""
        raise NotImplementedError


class _SQLiteState:
    """The committed view, read inside the view's write transaction (a StateReader)."""

    def __init__(self, c: Any, tombs: set[bytes]) -> None:
        self.c = c
        self.tombs = tombs

    def _one(self, sql: str, args: tuple) -> Any:
        self.c.execute(sql, args)
        row = self.c.fetchone()
        return None if row is None else row[0]

    def node(self, key: bytes) -> dict | None:
        raw = self._one("SELECT props FROM gv_nodes WHERE key=?", (key,))
        return None if raw is None else decode_props(raw)

    def is_tomb(self, key: bytes) -> bool:
        return key in self.tombs

    def out_edges(self, key: bytes, edge: int | None = None) -> list[tuple[int, bytes]]:
        if edge is None:
            self.c.execute("SELECT code, dst FROM gv_edges WHERE src=? ORDER BY code, dst", (key,))
        else:
            self.c.execute("SELECT code, dst FROM gv_edges WHERE src=? AND code=? ORDER BY dst",
                           (key, edge))
        return [(r[0], r[1]) for r in self.c.fetchall()]

    def in_edges(self, key: bytes) -> list[tuple[int, bytes]]:
        self.c.execute("SELECT code, src FROM gv_edges WHERE dst=? ORDER BY code, src", (key,))
        return [(r[0], r[1]) for r in self.c.fetchall()]

    def has_edge(self, src: bytes, edge: int, dst: bytes) -> bool:
        return self._one("SELECT 1 FROM gv_edges WHERE src=? AND code=? AND dst=?",
                         (src, edge, dst)) is not None

    def edge_props(self, src: bytes, edge: int, dst: bytes) -> dict | None:
        raw = self._one("SELECT props FROM gv_eprops WHERE key=?", (src + EDGE_BYTES[edge] + dst,))
        return None if raw is None else decode_props(raw)

    def lookup(self, key: bytes) -> bytes | None:
        return self._one("SELECT node FROM gv_lookup WHERE key=?", (key,))


def _write_sqlite(c: Any, ws: WriteSet) -> None:
    """Write a batch's WriteSet into the view's tables (the twin of GraphStore.write)."""
    for items in ws.node_dels.values():
        c.executemany("DELETE FROM gv_nodes WHERE key=?", [(k,) for k in items])
    for items in ws.nodes.values():
        c.executemany("INSERT OR REPLACE INTO gv_nodes VALUES (?,?)", items)
    for items in ws.stubs.values():
        c.executemany("INSERT OR IGNORE INTO gv_nodes VALUES (?,?)", items)
    for items in ws.creates.values():
        # Put if absent; one stored already (logged before its creation) gets the creation beneath.
        stored = {}
        for i in range(0, len(items), 500):
            keys = [key for key, _ in items[i:i + 500]]
            c.execute(f"SELECT key, props FROM gv_nodes WHERE key IN ({','.join('?' * len(keys))})", keys)
            stored.update(c.fetchall())
        c.executemany("INSERT OR REPLACE INTO gv_nodes VALUES (?,?)", [
            (key, value if key not in stored
             else encode_props({**decode_props(value), **decode_props(stored[key])}))
            for key, value in items])
    if ws.tombs:
        c.executemany("INSERT OR IGNORE INTO gv_tomb VALUES (?)", [(k,) for k in ws.tombs])
    for code, items in ws.out_dels.items():
        c.executemany("DELETE FROM gv_edges WHERE src=? AND code=? AND dst=?",
                      [(s, code, d) for s, d in items])
    for code, items in ws.out_puts.items():
        c.executemany("INSERT OR IGNORE INTO gv_edges VALUES (?,?,?)", [(s, code, d) for s, d in items])
    if ws.eprops_dels:
        c.executemany("DELETE FROM gv_eprops WHERE key=?", [(k,) for k in ws.eprops_dels])
    if ws.eprops_puts:
        c.executemany("INSERT OR REPLACE INTO gv_eprops VALUES (?,?)", ws.eprops_puts)
    if ws.idx_dels:
        c.executemany("DELETE FROM gv_idx WHERE key=? AND node=?", ws.idx_dels)
    if ws.idx_puts:
        c.executemany("INSERT OR IGNORE INTO gv_idx VALUES (?,?)", ws.idx_puts)
    if ws.lookup_dels:
        c.executemany("DELETE FROM gv_lookup WHERE key=?", [(k,) for k in ws.lookup_dels])
    if ws.lookup_puts:
        c.executemany("INSERT OR REPLACE INTO gv_lookup VALUES (?,?)", ws.lookup_puts)


class SQLiteGraphView(GraphView, SQLiteTrackingRecorder):
    """The graph view in SQLite tables, each event committed with its tracking record."""

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + [
            "CREATE TABLE IF NOT EXISTS gv_nodes (key BLOB PRIMARY KEY, props BLOB) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS gv_edges (src BLOB, code INTEGER, dst BLOB,"
            " PRIMARY KEY (src, code, dst)) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS gv_edges_in ON gv_edges (dst, code, src)",
            "CREATE TABLE IF NOT EXISTS gv_eprops (key BLOB PRIMARY KEY, props BLOB) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS gv_idx (key BLOB, node BLOB, PRIMARY KEY (key, node))"
            " WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS gv_lookup (key BLOB PRIMARY KEY, node BLOB) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS gv_tomb (key BLOB PRIMARY KEY) WITHOUT ROWID",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tombs: set[bytes] | None = None

    def _load_tombs(self) -> set[bytes]:
        if self._tombs is None:
            with self.datastore.transaction(commit=False) as c:
                c.execute("SELECT key FROM gv_tomb")
                self._tombs = {r[0] for r in c.fetchall()}
        return self._tombs

    def apply_event(self, event: Event, tracking: Tracking) -> None:
        tombs = self._load_tombs()
        mutations = apply(event)
        with self.datastore.transaction(commit=True) as c:
            overlay = Overlay(_SQLiteState(c, tombs), precise=False)
            overlay.apply(mutations, tracking.notification_id)
            ws = overlay.finish()
            _write_sqlite(c, ws)
            self._insert_tracking(c, tracking)
        tombs.update(ws.tombs)

    def counts(self) -> tuple[int, int]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT count(*) FROM gv_nodes")
            nodes = c.fetchone()[0]
            c.execute("SELECT count(*) FROM gv_edges")
            return nodes, c.fetchone()[0]


class POPOGraphView(GraphView, POPOTrackingRecorder):
    """The graph view in memory (dicts), as the docs' POPO materialised view."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.graph = MemoryGraph()

    def apply_event(self, event: Event, tracking: Tracking) -> None:
        with self._database_lock:
            self._assert_tracking_uniqueness(tracking)
            self._insert_tracking(tracking)
            overlay = Overlay(self.graph, precise=False)
            overlay.apply(apply(event), tracking.notification_id)
            self.graph.write(overlay.finish(), tracking.notification_id)

    def counts(self) -> tuple[int, int]:
        g = self.graph
        return len(g.nodes), sum(len(d) for by in g.out.values() for d in by.values())


class GraphProjection(Projection[GraphView]):
    """Projects the SDLC application into a graph view."""

    name = "graphview"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Events of other applications are ignored."""

    @process_event.register
    def _(self, domain_event: SdlcEntity.Event, tracking: Tracking) -> None:
        self.view.apply_event(_canonical(domain_event), tracking)


@dataclass
class ProjectResult:
    """How a projection run went."""

    events: int
    secs: float
    nodes: int
    edges: int

    @property
    def rate(self) -> float:
        return self.events / self.secs if self.secs else 0.0


def project(db_path: Path, view_class: type[GraphView], view_env: dict[str, str],
            section_size: int = 1000) -> ProjectResult:
    """Pull every notification of the app at ``db_path`` through the projection.

    The app and the view are constructed as ``ProjectionRunner`` would
    (an application object of its own, the view from an infrastructure
    factory configured by the projection's environment).
    """
    app = SdlcApp(env=sqlite_env(db_path))
    view = InfrastructureFactory.construct(
        env=_projection_env(GraphProjection.name, view_env)).tracking_recorder(view_class)
    projection = GraphProjection(view=view)
    reader = NotificationLogReader(app.notification_log, section_size=section_size)
    to_domain_event = app.mapper.to_domain_event
    process = projection.process_event
    name = app.name
    started = time.perf_counter()
    count = 0
    for notifications in reader.select(start=view.max_tracking_id(name), inclusive_of_start=False):
        for n in notifications:
            process(to_domain_event(n), Tracking(name, n.id))
        count += len(notifications)
    secs = time.perf_counter() - started
    nodes, edges = view.counts()
    app.close()
    return ProjectResult(count, secs, nodes, edges)


def _projection_env(name: str, env: dict[str, str]):
    from eventsourcing.utils import Environment

    return Environment(name, env)
