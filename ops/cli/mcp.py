"""``fleet mcp``: the graph's MCP server over stdio, for AI agents (README "MCP")."""

from __future__ import annotations

import click

from ..logs import configure_logging
from ..settings import Settings


@click.command("mcp")
@click.pass_obj
def mcp_cmd(settings: Settings) -> None:
    """Serve the graph to an AI agent over MCP on stdin/stdout (the agent starts this command).

    Tools: graph_schema, find_nodes, get_node, neighbors, path, run_query (the
    query language); resources: graph://ontology, graph://query-schema. It reads
    the active version of DATA_DIR's graph and needs no other process; logs go
    to stderr as JSON lines. The api serves the same server at /mcp
    (streamable HTTP). Exits when stdin closes.

    \b
    Example (an MCP client's server entry):
      {"command": "fleet", "args": ["--data-dir", "/srv/fleet/data", "mcp"]}
    """
    import anyio  # the MCP SDK loads only for this command

    from ..mcp.server import serve_stdio

    configure_logging("mcp")
    anyio.run(serve_stdio, settings.projections_dir)


def register(cli: click.Group) -> None:
    cli.add_command(mcp_cmd)
