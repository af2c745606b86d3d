"""``fleet query ...``: ask the graph projection questions from the shell.

Node ids are ``type:source:id`` (``issue:gitlab:12``) or paths
(``gitlab:group/project``, ``gitlab:group/project#12`` for an issue,
``gitlab:group/project!3`` for a merge request).
"""

from __future__ import annotations

from typing import Any

import click

from projections.read import questions
from projections.read.paging import LIMIT_MAX
from projections.read.reader import PATH_MAX_NODES, GraphReader
from projections.read.results import Node, Page

from ..settings import Settings
from ._common import echo_json, json_option
from .exits import EXIT_PROBLEM
from .query_lang import run_cmd


def _reader(settings: Settings) -> GraphReader:
    return GraphReader(settings.projections_dir)


def _fmt(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _echo_node(node: Node) -> None:
    click.echo(f"{node.id}  ({node.type})")
    for k, v in sorted(node.props.items()):
        click.echo(f"  {k}: {_fmt(v)}")


def _limit_option(default: int):
    return click.option("-n", "--limit", type=click.IntRange(1, LIMIT_MAX), default=default,
                        show_default=True, help="Items per page.")


_after_option = click.option("--after", metavar="CURSOR",
                             help="The next page: the cursor the previous page printed (JSON: next).")


def _footer(page: Page, noun: str, after: str | None) -> None:
    """Say how much of the answer was shown, and how to see the rest."""
    total = f"{'at least ' if page.total_is_lower_bound else ''}{page.total}"
    if page.truncated and page.next:
        click.echo(f"showing {len(page.items)} of {total} {noun} (--limit, --after {page.next})")
    elif page.truncated:
        click.echo(f"showing {len(page.items)} of {total} {noun} (raise --limit for the rest)")
    elif after is not None:
        click.echo(f"showing {len(page.items)} of {total} {noun} (last page)")
    else:
        click.echo(f"{total} {noun}")


def _parse_value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lower() in ("null", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        return text


@click.group("query")
def query_group() -> None:
    """Query the active version of the graph projection.

    Node ids are type:source:id (issue:gitlab:12) or paths: gitlab:group/project,
    gitlab:group/project#12 (an issue), gitlab:group/project!3 (a merge request).
    Lists come a page at a time: "showing 100 of 466 ..." names the cursor to
    pass to --after for the next page (JSON: items, next, total,
    total_is_lower_bound, truncated).
    Exit codes: 0 answered, 1 unknown node or no answer (e.g. no path, or a
    path search truncated at --max-nodes), 2 malformed arguments.

    \b
    Example:
      fleet query counts
      fleet query node issue:gitlab:12
      fleet query open-issues gitlab:platform/api --label bug
    """


@query_group.command("node")
@click.argument("node")
@json_option
@click.pass_obj
def node_cmd(settings: Settings, node: str, as_json: bool) -> None:
    """Show a node and its properties.

    \b
    Example:
      fleet query node issue:gitlab:12
      fleet query node 'gitlab:platform/api#12' --json
    """
    with _reader(settings) as reader:
        found = reader.node(node)
    echo_json(found.as_dict()) if as_json else _echo_node(found)


_edge_option = click.option("-e", "--edge", "edges", multiple=True,
                            help="Only this edge type (repeatable), e.g. -e CLOSES -e MENTIONS.")
_direction_option = click.option("-d", "--direction", type=click.Choice(["out", "in", "both"]),
                                 default="both", show_default=True)


@query_group.command("neighbors")
@click.argument("node")
@_edge_option
@_direction_option
@_limit_option(100)
@_after_option
@json_option
@click.pass_obj
def neighbors_cmd(settings: Settings, node: str, edges: tuple[str, ...], direction: str,
                  limit: int, after: str | None, as_json: bool) -> None:
    """List the edges at a node, by edge type and direction, a page at a time.

    \b
    Example:
      fleet query neighbors project:gitlab:7 -d in -e IN_PROJECT -n 20
    """
    with _reader(settings) as reader:
        page = reader.neighbor_page(node, edges=list(edges) or None, direction=direction,
                                    limit=limit, after=after, with_props=True)
    if as_json:
        echo_json(page.as_dict())
        return
    for n in page.items:
        arrow = "->" if n.direction == "out" else "<-"
        props = f"  {n.props}" if n.props else ""
        click.echo(f"{arrow} {n.edge:<13} {n.id}{props}")
    _footer(page, "edges", after)


@query_group.command("hops")
@click.argument("node")
@click.option("-k", "--depth", type=click.IntRange(min=1, max=10), default=2, show_default=True)
@_edge_option
@_direction_option
@click.option("--max-nodes", type=click.IntRange(min=1), default=10_000, show_default=True)
@json_option
@click.pass_obj
def hops_cmd(settings: Settings, node: str, depth: int, edges: tuple[str, ...], direction: str,
             max_nodes: int, as_json: bool) -> None:
    """Nodes within K hops of a node, with their distance.

    \b
    Example:
      fleet query hops issue:gitlab:12 -k 3 --max-nodes 500
    """
    with _reader(settings) as reader:
        found = reader.hops(node, depth, edges=list(edges) or None, direction=direction,
                            max_nodes=max_nodes)
    if as_json:
        echo_json(found)
        return
    for key, distance in found["nodes"].items():
        click.echo(f"{distance}  {key}")
    click.echo(f"{found['count']} nodes within {depth} hops"
               + (" (truncated at --max-nodes)" if found["truncated"] else ""))


@query_group.command("path")
@click.argument("source")
@click.argument("target")
@_edge_option
@click.option("--directed", is_flag=True, help="Follow edges in their direction only.")
@click.option("--max-depth", type=click.IntRange(min=1, max=20), default=6, show_default=True)
@click.option("--max-nodes", type=click.IntRange(min=1), default=PATH_MAX_NODES, show_default=True,
              help="Give up (and say so) after visiting this many nodes.")
@json_option
@click.pass_obj
def path_cmd(settings: Settings, source: str, target: str, edges: tuple[str, ...], directed: bool,
             max_depth: int, max_nodes: int, as_json: bool) -> None:
    """A shortest path between two nodes (exit 1 when none was found).

    A search that reaches --max-nodes before finding a path says it was
    truncated: a path may still exist (JSON: "truncated": true).

    \b
    Example:
      fleet query path user:gitlab:3 issue:gitlab:12 --max-depth 4
      fleet query path issue:gitlab:12 issue:gitlab:40 --max-nodes 5000000 --json
    """
    with _reader(settings) as reader:
        found = reader.path(source, target, edges=list(edges) or None, directed=directed,
                            max_depth=max_depth, max_nodes=max_nodes)
    if as_json:
        echo_json(found.as_dict())
    elif found.truncated:
        click.echo(f"no path found: search truncated after visiting {found.visited} nodes"
                   f" (--max-nodes {max_nodes}); a path of at most {max_depth} hops may still exist")
    elif not found.found:
        click.echo(f"no path within {max_depth} hops")
    else:
        for step in found.steps or ():
            arrow = f"-[{step.edge}]->" if step.direction == "out" else f"<-[{step.edge}]-"
            click.echo(f"{step.source} {arrow} {step.target}")
    if not found.found:
        raise SystemExit(EXIT_PROBLEM)


@query_group.command("find")
@click.argument("type_name", metavar="TYPE")
@click.argument("filters", nargs=-1, metavar="[PROP=VALUE]...")
@click.option("--source", help="Only nodes of this event source (gitlab, github, ...).")
@_limit_option(50)
@_after_option
@json_option
@click.pass_obj
def find_cmd(settings: Settings, type_name: str, filters: tuple[str, ...], source: str | None,
             limit: int, after: str | None, as_json: bool) -> None:
    """Nodes of TYPE whose properties equal the filters, a page at a time.

    \b
    Example:
      fleet query find issue project_id=7 state=opened -n 20
      fleet query find user username=alice --json
    """
    parsed = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not PROP=VALUE", param_hint="FILTERS")
        parsed[key] = _parse_value(value)
    with _reader(settings) as reader:
        page = reader.find(type_name, parsed, source=source, limit=limit, after=after)
    if as_json:
        echo_json(page.as_dict())
        return
    for node in page.items:
        summary = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(node.props.items())
                            if k in ("title", "name", "username", "state", "iid", "path"))
        click.echo(f"{node.id}  {summary}")
    _footer(page, "nodes", after)


@query_group.command("counts")
@json_option
@click.pass_obj
def counts_cmd(settings: Settings, as_json: bool) -> None:
    """Nodes and edges per type in the active version.

    \b
    Example:
      fleet query counts --json
    """
    with _reader(settings) as reader:
        counts = reader.counts()
    if as_json:
        echo_json(counts)
        return
    click.echo(f"graph v{counts['version']} at position {counts['position']}")
    for kind in ("nodes", "edges"):
        click.echo(f"{kind} ({sum(counts[kind].values())}):")
        for name, n in counts[kind].items():
            click.echo(f"  {name:<14} {n}")


@query_group.command("open-issues")
@click.argument("project")
@click.option("--label", help="Only issues with this label (name or label id).")
@_limit_option(100)
@_after_option
@json_option
@click.pass_obj
def open_issues_cmd(settings: Settings, project: str, label: str | None, limit: int,
                    after: str | None, as_json: bool) -> None:
    """Open issues of a project, optionally with a given label.

    \b
    Example:
      fleet query open-issues gitlab:platform/api --label bug
      fleet query open-issues project:gitlab:7 --json
    """
    with _reader(settings) as reader:
        page = questions.open_issues_page(reader, project, label=label, limit=limit, after=after)
    if as_json:
        echo_json(page.as_dict())
        return
    for node in page.items:
        click.echo(f"#{node.props.get('iid')}  {node.id}  {node.props.get('title', '')}")
    _footer(page, "open issues", after)


@query_group.command("closed-by")
@click.argument("issue")
@_limit_option(100)
@_after_option
@json_option
@click.pass_obj
def closed_by_cmd(settings: Settings, issue: str, limit: int, after: str | None,
                  as_json: bool) -> None:
    """Commits and merge requests that close an issue by a closing keyword.

    \b
    Example:
      fleet query closed-by 'gitlab:platform/api#12'
    """
    with _reader(settings) as reader:
        page = questions.closed_by(reader, issue, limit=limit, after=after)
    if as_json:
        echo_json(page.as_dict())
        return
    for node in page.items:
        extra = node.props.get("title") or ""
        state = f" [{node.props['state']}]" if "state" in node.props else ""
        click.echo(f"{node.id}{state}  {extra}")
    if page.total == 0:
        click.echo("nothing in the graph closes it")
    else:
        _footer(page, "closing commits and merge requests", after)


@query_group.command("authored")
@click.argument("project")
@click.option("--user", help="Only this user's work (user:gitlab:3).")
@_limit_option(1000)
@_after_option
@json_option
@click.pass_obj
def authored_cmd(settings: Settings, project: str, user: str | None, limit: int,
                 after: str | None, as_json: bool) -> None:
    """Who authored what in a project (per user counts, or one user's items).

    \b
    Example:
      fleet query authored gitlab:platform/api
      fleet query authored project:gitlab:7 --user user:gitlab:3 --json
    """
    if after is not None and user is None:
        raise click.UsageError("--after pages one user's items: give --user too")
    with _reader(settings) as reader:
        found = questions.authored(reader, project, user=user, limit=limit, after=after)
    if as_json:
        echo_json(found)
        return
    if user is not None:
        for item in found["items"]:
            click.echo(f"{item['type']:<13} {item['id']}  {item['props'].get('title', '')}")
        _footer(Page(found["items"], found["next"], found["total"], found["total_is_lower_bound"],
                     found["truncated"]), "items", after)
        return
    for author, per in sorted(found["authors"].items(), key=lambda kv: -sum(kv[1].values())):
        click.echo(f"{author:<28} " + ", ".join(f"{k}={v}" for k, v in sorted(per.items())))
    if found["truncated"]:
        click.echo(f"counted over the first {found['counted']} issues, merge requests and commits"
                   " (raise --limit: it counts --limit x 100)")


@query_group.command("blocks")
@click.argument("issue")
@click.option("--direct", is_flag=True, help="Only issues it blocks directly.")
@_limit_option(1000)
@json_option
@click.pass_obj
def blocks_cmd(settings: Settings, issue: str, direct: bool, limit: int, as_json: bool) -> None:
    """Issues an issue blocks, transitively, with their distance.

    \b
    Example:
      fleet query blocks issue:gitlab:12
    """
    with _reader(settings) as reader:
        page = questions.blocks_page(reader, issue, transitive=not direct, limit=limit)
    if as_json:
        echo_json(page.as_dict())
        return
    for item in page.items:
        click.echo(f"{'  ' * (item['depth'] - 1)}{item['id']}  [{item['state']}]  {item['title'] or ''}")
    if not page.items:
        click.echo("it blocks nothing")
    else:
        _footer(page, "blocked issues", None)


query_group.add_command(run_cmd)  # the query language: ops/cli/query_lang.py


def register(cli: click.Group) -> None:
    cli.add_command(query_group)
