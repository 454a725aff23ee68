"""A small MCP server for the tests, written with the official SDK (mcp 2.x ``MCPServer``).

``python mcp_server.py stdio`` serves over stdio; ``python mcp_server.py http PORT`` serves
streamable HTTP on 127.0.0.1:PORT at ``/mcp``.
"""

from __future__ import annotations

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("accord-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def fail(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
