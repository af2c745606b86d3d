"""``fleet export graph``: a consistent snapshot of a projection version as JSON lines.

A thin command over :func:`projections.read.export.export_lines`; the file
format is README "Export and digest".
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

import click
import msgspec

from projections.model.ontology import NAME
from projections.read.export import ExportProgress, export_lines, open_export
from projections.versions.catalog import Versions, parse_version

from ..settings import Settings

_PROGRESS_EVERY_SECS = 1.0


def _progress_printer() -> tuple[Callable[[ExportProgress], None], Callable[[], None]]:
    """A progress callback for stderr (a terminal only, at most once a second) and its finish."""
    interactive = sys.stderr.isatty()
    shown = [0.0]

    def report(p: ExportProgress) -> None:
        if interactive and (p.elapsed_secs - shown[0] >= _PROGRESS_EVERY_SECS or p.done >= p.total):
            shown[0] = p.elapsed_secs
            rate = p.done / p.elapsed_secs if p.elapsed_secs else 0.0
            click.echo(f"\r{p.phase:<6} {p.done:>12,}/{p.total:,} nodes and edges  {rate:>10,.0f}/s",
                       nl=False, err=True)

    def finish() -> None:
        if interactive and shown[0]:
            click.echo("", err=True)

    return report, finish


def _write(out: BinaryIO, blocks: Iterable[bytes]) -> int:
    written = 0
    for block in blocks:
        out.write(block)
        written += len(block)
    return written


@click.command("export")
@click.argument("projection", type=click.Choice((NAME,)), metavar="PROJECTION")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (replaced atomically when complete) instead of stdout.")
@click.option("--version", "version_text", metavar="N",
              help="Export version N (e.g. 3 or v3) instead of the active one.")
@click.pass_obj
def export_cmd(settings: Settings, projection: str, output: Path | None, version_text: str | None) -> None:
    """Export every node and edge of the active version as JSON lines, from one snapshot.

    The first line is a header: {"kind":"export", "projection", "version",
    "seq", "position", "digest", "nodes", "edges"}. Then one line per node
    ({"id","props","type"}) and per edge ({"dst","edge","props","src"}). A new
    subscriber loads the lines and follows the GRAPH stream from seq + 1;
    the digest is the sum of the lines' SHA-256 values (README "Export and
    digest"). A summary goes to stderr, progress too on a terminal. Exit 1
    when there is no such version.

    \b
    Example:
      fleet export graph --output graph.jsonl
      fleet export graph | head -1          # the header alone
      fleet export graph --version 2 -o v2.jsonl
    """
    version = parse_version(version_text) if version_text is not None else None
    store, number, offset = open_export(settings.projections_dir, projection, version)
    try:
        active = Versions(settings.projections_dir, projection).active()
        if number != active:
            click.echo(f"note: {projection} v{number} is not the active version: its changes are not"
                       " on the GRAPH stream, so its seq is no place to follow from", err=True)
        report, finish = _progress_printer()
        started = time.perf_counter()
        blocks = export_lines(store, projection=projection, version=number, seq_offset=offset,
                              progress=report)
        header = next(blocks)  # the first block is the header line alone
        if output is None:
            out = sys.stdout.buffer
            out.write(header)
            size = len(header) + _write(out, blocks)
            out.flush()
        else:
            part = output.with_name(f".{output.name}.part")
            try:
                with open(part, "wb") as out:
                    out.write(header)
                    size = len(header) + _write(out, blocks)
                os.replace(part, output)
            finally:
                part.unlink(missing_ok=True)
        finish()
    finally:
        store.close()
    elapsed = time.perf_counter() - started
    h = msgspec.json.decode(header)
    click.echo(f"exported {projection} v{number} at position {h['position']}, seq {h['seq']}:"
               f" {h['nodes']:,} nodes, {h['edges']:,} edges, {size:,} bytes in {elapsed:.1f}s;"
               f" digest {h['digest']}" + (f" -> {output}" if output else ""), err=True)


def register(cli: click.Group) -> None:
    cli.add_command(export_cmd)
