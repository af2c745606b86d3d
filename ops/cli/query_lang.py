"""``fleet query run``: answer a query document of the graph query language.

Added to the ``fleet query`` group by :mod:`.query`; the language is in
:mod:`projections.read.query` (README "Query language").
"""

from __future__ import annotations

import json
from typing import BinaryIO

import click
import msgspec

from projections.read.query.execute import execute
from projections.read.query.plan import plan
from projections.read.query.saved import SAVED
from projections.read.query.schema import InvalidQuery, parse
from projections.read.reader import GraphReader

from ..settings import Settings

__all__ = ["run_cmd"]


@click.command("run")
@click.argument("document", type=click.File("rb"), required=False)
@click.option("--saved", "saved_name", type=click.Choice(sorted(SAVED)),
              help="Run a saved query instead of a document (its arguments with -p).")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="An argument of the saved query (repeatable), e.g. -p project=gitlab:platform/api.")
@click.option("--cursor", help="The `cursor` of the previous answer: print the next page.")
@click.option("-n", "--limit", type=click.IntRange(1, 1000), help="Items per page (overrides the document's).")
@click.pass_obj
def run_cmd(settings: Settings, document: BinaryIO | None, saved_name: str | None,
            params: tuple[str, ...], cursor: str | None, limit: int | None) -> None:
    """Answer a query document (FILE.json, or - for stdin) and print the answer as JSON.

    The document's JSON Schema is `fleet schema query`; examples/queries/ has
    examples. The answer has items, truncated, cursor (pass it back with
    --cursor for the next page) and budget. Exit codes: 0 answered, 1 unknown
    node, 2 malformed document (the message names its JSON path).

    \b
    Example:
      fleet query run examples/queries/who-touched-blockers.json
      echo '{"type":"nodes","select":{"type":"User"},"limit":5}' | fleet query run -
      fleet query run --saved open-issues -p project=gitlab:platform/api -p label=bug
    """
    if (document is None) == (saved_name is None):
        raise click.UsageError("give a document (FILE.json or -) or --saved NAME")
    if saved_name is not None:
        doc = _saved(saved_name, params)
    else:
        if params:
            raise click.UsageError("-p goes with --saved")
        raw = document.read()
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidQuery("$", f"not valid JSON: {e}") from None
    if isinstance(doc, dict):
        if cursor is not None:
            doc["cursor"] = cursor
        if limit is not None:
            doc["limit"] = limit
    with GraphReader(settings.projections_dir) as reader:
        answer = execute(reader, plan(parse(doc)))
    # msgspec writes times as RFC 3339, as the api's answers have them
    click.echo(msgspec.json.format(msgspec.json.encode(answer), indent=2))


def _saved(name: str, params: tuple[str, ...]) -> dict:
    kwargs: dict = {}
    for param in params:
        key, sep, value = param.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{param!r} is not NAME=VALUE", param_hint="-p")
        kwargs[key.replace("-", "_")] = int(value) if value.isdecimal() else (
            value.lower() == "true" if value.lower() in ("true", "false") else value)
    try:
        return SAVED[name](**kwargs)
    except TypeError as e:
        raise click.BadParameter(f"{name}: {e}", param_hint="-p") from None
