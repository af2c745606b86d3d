"""The Kùzu (0.11.x) side of bench/peers.py: bulk load the final graph, then query.

The graph exported from graphfleet's rebuilt projection is written as one
CSV per node type and per (edge type, source type, target type), and loaded
the way Kùzu's docs recommend for bulk data: a schema of node tables (one
per node type, ``id STRING PRIMARY KEY`` plus typed properties) and
multi-pair rel tables (one per edge type, a ``FROM x TO y`` pair for every
pair present), then ``COPY ... FROM`` each CSV. Queries are Cypher with
parameters, prepared once per shape (Kùzu otherwise plans every call), and
their results fetched in full.
"""

from __future__ import annotations

import csv
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import kuzu

from projections.model.keys import TAGS
from projections.model.ontology import EDGE_TYPES, NODE_TYPES

__all__ = ["KuzuGraph", "load"]

_KUZU_TYPES = {"str": "STRING", "int": "INT64", "bool": "BOOLEAN", "datetime": "TIMESTAMP"}
#: text tag of a node id (``merge_request``) -> node table name
_TABLE_OF_TAG = {tag: name for name, tag in TAGS.items()}


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def table_of(node_id: str) -> str:
    """The node table of a graphfleet node id (``issue:gitlab:12`` -> ``Issue``)."""
    return _TABLE_OF_TAG[node_id.partition(":")[0]]


def load(nodes: dict[str, list], edges: dict[str, list], workdir: Path) -> tuple["KuzuGraph", dict]:
    """Write CSVs, create the schema and COPY everything; returns the graph and timings."""
    csv_dir = workdir / "csv"
    csv_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    node_files = {}
    for t in NODE_TYPES:
        path = csv_dir / f"node_{t.name}.csv"
        cols = list(t.props)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", *cols])
            for node_id, props in nodes[t.name]:
                w.writerow([node_id, *(_cell(props.get(c)) for c in cols)])
        node_files[t.name] = path
    rel_files: dict[str, dict[tuple[str, str], Path]] = {}
    for e in EDGE_TYPES:
        by_pair: dict[tuple[str, str], list] = {}
        for src_type, src, dst_type, dst, props in edges[e.name]:
            by_pair.setdefault((src_type, dst_type), []).append(
                [src, dst, *(_cell((props or {}).get(p)) for p in e.props)])
        files = rel_files[e.name] = {}
        for (src_type, dst_type), rows in by_pair.items():
            path = csv_dir / f"rel_{e.name}_{src_type}_{dst_type}.csv"
            with open(path, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["from", "to", *e.props])
                w.writerows(rows)
            files[(src_type, dst_type)] = path
    csv_secs = time.perf_counter() - started

    started = time.perf_counter()
    db = kuzu.Database(str(workdir / "kuzu.db"))
    conn = kuzu.Connection(db)
    for t in NODE_TYPES:
        cols = "".join(f", {c} {_KUZU_TYPES[k]}" for c, k in t.props.items())
        conn.execute(f"CREATE NODE TABLE `{t.name}`(id STRING PRIMARY KEY{cols})")
    for e in EDGE_TYPES:
        pairs = rel_files[e.name]
        if not pairs:
            continue
        spec = ", ".join(f"FROM `{s}` TO `{d}`" for s, d in pairs)
        props = "".join(f", {p} {_KUZU_TYPES[k]}" for p, k in e.props.items())
        conn.execute(f"CREATE REL TABLE `{e.name}`({spec}{props})")
    for t in NODE_TYPES:
        conn.execute(f"COPY `{t.name}` FROM '{node_files[t.name]}' (header=true)")
    for e in EDGE_TYPES:
        for (s, d), path in rel_files[e.name].items():
            conn.execute(f"COPY `{e.name}` FROM '{path}' (header=true, from='{s}', to='{d}')")
    copy_secs = time.perf_counter() - started
    graph = KuzuGraph(db, conn)
    return graph, {"csv_secs": csv_secs, "copy_secs": copy_secs}


class KuzuGraph:
    """The benchmark's query set over a loaded Kùzu database."""

    def __init__(self, db: kuzu.Database, conn: kuzu.Connection) -> None:
        self.db = db
        self.conn = conn
        self._prepared: dict[str, Any] = {}

    def close(self) -> None:
        self.conn.close()
        self.db.close()

    def _run(self, query: str, params: dict) -> list:
        stmt = self._prepared.get(query)
        if stmt is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                stmt = self._prepared[query] = self.conn.prepare(query)
        return self.conn.execute(stmt, params).get_all()

    def counts(self) -> tuple[int, int]:
        nodes = self.conn.execute("MATCH (n) RETURN count(*)").get_all()[0][0]
        edges = self.conn.execute("MATCH ()-[e]->() RETURN count(*)").get_all()[0][0]
        return nodes, edges

    def node(self, node_id: str) -> dict:
        rows = self._run(f"MATCH (n:`{table_of(node_id)}`) WHERE n.id = $id RETURN n", {"id": node_id})
        return rows[0][0]

    def neighbors(self, node_id: str) -> list:
        return self._run(f"MATCH (n:`{table_of(node_id)}`)-[e]-(m) WHERE n.id = $id"
                         " RETURN label(e), m.id LIMIT 100", {"id": node_id})

    def hops3(self, node_id: str) -> int:
        rows = self._run(f"MATCH (n:`{table_of(node_id)}`)-[e* SHORTEST 1..3]-(m) WHERE n.id = $id"
                         " RETURN m.id, length(e)", {"id": node_id})
        return len(rows)

    def path(self, src: str, dst: str) -> int | None:
        rows = self._run(f"MATCH p = (a:`{table_of(src)}`)-[* SHORTEST 1..6]-(b:`{table_of(dst)}`)"
                         " WHERE a.id = $a AND b.id = $b RETURN length(p), properties(nodes(p), 'id')",
                         {"a": src, "b": dst})
        return rows[0][0] if rows else None

    def filtered(self, project_id: str, label_id: str) -> list:
        pid = int(project_id.rsplit(":", 1)[1])
        return self._run("MATCH (i:Issue)-[:HAS_LABEL]->(l:Label) WHERE l.id = $label"
                         " AND i.state = 'opened' AND i.project_id = $pid RETURN i LIMIT 100",
                         {"label": label_id, "pid": pid})
