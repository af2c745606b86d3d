"""``fleet publish`` and ``fleet simulate``: put canonical events on the SDLC stream."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import IO

import click

from events.codec import decode_event
from events.errors import InvalidEvent
from events.types import subject_for
from workers.natsio.publish import Publisher, RateLimiter, publish_events
from workers.natsio.streams import ensure_stream

from ..settings import Settings
from ..simulate import MAX_SEED
from ..wiring import sdlc_stream
from ._common import echo_json, json_option, progress_printer, run_with_nats
from .exits import EXIT_PROBLEM

#: click type of ``--seed``: negative seeds would repeat positive ones (``random.Random(-7)``).
SEED = click.IntRange(min=0, max=MAX_SEED)


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(stream, 1):
        line = line.strip()
        if line:
            yield number, line


def _fits(nc, number: int, line: bytes, refused: list[str], *, msg_id: str | None = None) -> bool:
    """Whether ``line`` fits in one NATS message; if not, say so in ``refused``.

    nats-py raises MaxPayloadError for a larger one, after the publisher counted it as in
    flight; checked first, the line is reported and the rest of the file still goes out.
    """
    size = len(line) + (len(msg_id) + 32 if msg_id else 0)  # the Nats-Msg-Id header
    if size <= nc.max_payload:
        return True
    refused.append(f"line {number}: {len(line):_} bytes is more than the NATS server takes in one"
                   f" message (max_payload {nc.max_payload:_} bytes) - not published; raise the"
                   " server's max_payload (the embedded one's follows FLEET_MAX_EVENT_BYTES) or"
                   " shorten the line")
    return False


@click.command("publish")
@click.argument("file", type=click.File("rb"))
@click.option("--raw", is_flag=True,
              help="Publish lines as they are, even invalid ones (they land in the quarantine).")
@click.option("--rate", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Events per second; 0 = as fast as possible.")
@json_option
@click.pass_obj
def publish_cmd(settings: Settings, file: IO[bytes], raw: bool, rate: float, as_json: bool) -> None:
    """Publish canonical events, one JSON object per line, from FILE (or - for stdin).

    Each line is validated first; invalid lines are reported with their line
    number and reason and not published (unless --raw). Exit code 1 when any
    line was invalid or refused.

    \b
    Example:
      fleet publish events.jsonl
      fleet simulate --events 10 --dry-run | fleet publish -
    """
    invalid: list[str] = []
    refused: list[str] = []
    max_bytes = settings.max_event_bytes

    async def work(nc):
        await ensure_stream(nc.jetstream(), sdlc_stream(settings))
        publisher = Publisher(nc)
        limiter = RateLimiter(rate)
        try:
            for number, line in _lines(file):
                try:
                    event = decode_event(line, max_bytes=max_bytes)
                except InvalidEvent as e:
                    invalid.append(f"line {number}: {e}")
                    if raw and _fits(nc, number, line, refused):
                        await publisher.publish(f"{settings.subject_prefix}.unknown.invalid", line,
                                                msg_id=None)
                    continue
                if _fits(nc, number, line, refused, msg_id=event.event_id):
                    await publisher.publish(subject_for(event, settings.subject_prefix), line,
                                            msg_id=event.event_id)
                await limiter.tick()
            return await publisher.flush()
        finally:
            await publisher.close()

    report = run_with_nats(settings, "fleet-publish", work)
    for problem in invalid:
        click.echo(problem, err=True)
    report.errors[:0] = refused
    summary = {"published": report.published, "duplicates": report.duplicates,
               "invalid": len(invalid), "errors": report.errors}
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"published={report.published} duplicates={report.duplicates} "
                   f"invalid={len(invalid)} errors={len(report.errors)}")
        for error in report.errors[:20]:
            click.echo(f"error: {error}", err=True)
    if invalid or report.errors:
        sys.exit(EXIT_PROBLEM)


@click.command("simulate")
@click.option("--events", "n_events", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="How many events to publish.")
@click.option("--rate", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Events per second; 0 = as fast as possible.")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the deterministic workload; each seed is its own organisation.")
@click.option("--dry-run", is_flag=True, help="Print the events as JSON lines instead of publishing.")
@json_option
@click.pass_obj
def simulate_cmd(settings: Settings, n_events: int, rate: float, seed: int, dry_run: bool,
                 as_json: bool) -> None:
    """Publish a deterministic, realistic SDLC workload (same seed, same events).

    Groups, projects, users, labels and milestones first; then issues, merge
    requests, pushes with closing references, comments, renames, transfers and
    deletions, skewed towards a few hot projects and users.

    Each seed has its own id space: its events carry the source `simulate`
    (seed 0) or `simulate-<seed>`, so seed 7's first project is
    `project:simulate-7:1`, and runs of several seeds add up to a bigger
    graph instead of overwriting each other's users and projects. The same
    seed again publishes the same events, which the log drops as duplicates.

    \b
    Example:
      fleet simulate --events 100000 --seed 7
      fleet simulate --events 2000 --rate 200
      fleet simulate --events 5 --dry-run
    """
    from events.codec import encode_event

    from ..simulate import simulate

    if dry_run:
        out = sys.stdout.buffer
        for event in simulate(n_events, seed=seed):
            out.write(encode_event(event) + b"\n")
        return
    started = time.monotonic()

    async def work(nc):
        await ensure_stream(nc.jetstream(), sdlc_stream(settings))
        return await publish_events(nc, simulate(n_events, seed=seed), prefix=settings.subject_prefix,
                                    rate=rate, progress=progress_printer(n_events, "published"))

    report = run_with_nats(settings, "fleet-simulate", work)
    elapsed = time.monotonic() - started
    summary = {"published": report.published, "duplicates": report.duplicates,
               "errors": report.errors, "seconds": round(elapsed, 2),
               "events_per_sec": round(n_events / elapsed) if elapsed else None}
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"published={report.published} duplicates={report.duplicates} "
                   f"errors={len(report.errors)} in {elapsed:.1f}s")
    if report.errors:
        sys.exit(EXIT_PROBLEM)


def register(cli: click.Group) -> None:
    cli.add_command(publish_cmd)
    cli.add_command(simulate_cmd)
