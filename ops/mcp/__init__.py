"""The MCP server over the graph: tools (:mod:`.tools`), the server (:mod:`.server`), served
over stdio by ``fleet mcp`` and over streamable HTTP at the api's ``/mcp`` (:mod:`.http`)."""
