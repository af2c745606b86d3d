"""``fleet schema ...``: the JSON Schemas of graphfleet's contracts."""

from __future__ import annotations

import click

from events.codec import event_json_schema
from projections.changes.contract import change_json_schema

from ._common import echo_json


@click.group("schema")
def schema_group() -> None:
    """Print the JSON Schema of a contract, for producers and consumers."""


@schema_group.command("events")
def events_cmd() -> None:
    """The JSON Schema of every canonical event (version 1).

    \b
    Example:
      fleet schema events > sdlc-events.schema.json
    """
    echo_json(event_json_schema())


@schema_group.command("changes")
def changes_cmd() -> None:
    """The JSON Schema of every graph-change event on the GRAPH stream (version 1).

    One JSON object per message on ``graph.<projection>.<kind>``; ``kind`` is
    the tag (node_upserted, node_deleted, edge_added, edge_updated,
    edge_removed, rebuilt). Fields are only ever added, with defaults.

    \b
    Example:
      fleet schema changes > graph-changes.schema.json
    """
    echo_json(change_json_schema())


@schema_group.command("query")
def query_cmd() -> None:
    """The JSON Schema (2020-12) of a query document of the graph query language.

    What `fleet query run`, `POST /graph/query` and the MCP tool run_query take
    (README "Query language").

    \b
    Example:
      fleet schema query > graph-query.schema.json
    """
    from projections.read.query.schema import query_json_schema

    echo_json(query_json_schema())


def register(cli: click.Group) -> None:
    cli.add_command(schema_group)
