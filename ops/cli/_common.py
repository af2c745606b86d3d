"""Helpers shared by the CLI modules: JSON output, NATS sessions, progress."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["echo_json", "json_option", "positive_secs", "run_with_nats"]

T = TypeVar("T")

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


class _PositiveSecs(click.ParamType):
    """A finite number of seconds above 0 (``float('nan')`` and ``-1`` are typos)."""

    name = "secs"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        try:
            secs = float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number of seconds (e.g. 2 or 0.5)", param, ctx)
        if not math.isfinite(secs) or secs <= 0:
            self.fail(f"{value!r} must be a number of seconds above 0 (e.g. 2 or 0.5)", param, ctx)
        return secs


#: click type of options in seconds that must be positive
positive_secs = _PositiveSecs()


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


def run_with_nats(settings: Settings, name: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Connect to NATS, run ``work(nc)``, drain the connection."""
    import asyncio

    from workers.natsio.client import connect  # nats-py: only for the commands that talk to NATS

    async def main() -> T:
        nc = await connect(settings.nats_url, name=name)
        try:
            return await work(nc)
        finally:
            await nc.drain()

    return asyncio.run(main())


def progress_printer(total: int | None, label: str) -> Callable[[int], None]:
    """A callback printing ``label: n/total`` on stderr when it is a terminal."""
    interactive = sys.stderr.isatty()

    def report(n: int) -> None:
        if interactive:
            suffix = f"/{total}" if total else ""
            click.echo(f"\r{label}: {n}{suffix}", nl=False, err=True)
            if total and n >= total:
                click.echo("", err=True)

    return report
