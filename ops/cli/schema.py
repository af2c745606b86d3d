"""``fleet schema ...``: the JSON Schemas of graphfleet's contracts."""

from __future__ import annotations

import click

from events.codec import event_json_schema

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


def register(cli: click.Group) -> None:
    cli.add_command(schema_group)
