"""Tools from MCP servers, through the official ``mcp`` SDK (``pip install "accord[mcp]"``).

``await accord.mcp.tools("stdio:python server.py")`` starts the server as a subprocess (stdio
transport); ``await accord.mcp.tools("http://127.0.0.1:8000/mcp")`` connects over streamable
HTTP. Either returns the server's tools as :class:`~accord.tools.Tool` objects with the server's
own JSON schemas, ready for ``Agent(..., tools=...)``.

Caveat: each tool call opens its own connection (for stdio, a new server process) and closes it
afterwards. That keeps tools usable from any event loop and leaves no process behind, but it
costs a connection per call, and a server that keeps state between calls of one session will not
see one session. Arguments are validated by the server; a server's error reply or failure goes
back to the model as an error result, like any tool's.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import AsyncIterator
from typing import Any

from accord._lazy import require
from accord.errors import ConfigError, RunError
from accord.tools import Tool

__all__ = ["tools", "McpToolError"]


class McpToolError(RunError):
    """An MCP server could not be reached, or answered a call with an error."""


_MINIMAL_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR", "PYTHONPATH")


@contextlib.asynccontextmanager
async def _session(target: str, env: dict[str, str] | None) -> AsyncIterator[Any]:
    mcp = require("mcp", extra="mcp")
    if target.startswith("stdio:"):
        argv = shlex.split(target[len("stdio:") :])
        if not argv:
            raise ConfigError("an MCP stdio target needs a command: 'stdio:COMMAND ARGS'.")
        from mcp.client.stdio import stdio_client

        # The server gets a minimal environment (no API keys of this process) plus `env`.
        base = {k: os.environ[k] for k in _MINIMAL_ENV if k in os.environ}
        params = mcp.StdioServerParameters(
            command=argv[0], args=argv[1:], env={**base, **(env or {})}
        )
        async with stdio_client(params) as (read, write), mcp.ClientSession(read, write) as s:
            await s.initialize()
            yield s
    elif target.startswith(("http://", "https://")):
        from mcp.client.streamable_http import streamable_http_client

        async with (
            streamable_http_client(target) as streams,
            mcp.ClientSession(streams[0], streams[1]) as s,
        ):
            await s.initialize()
            yield s
    else:
        raise ConfigError(
            f"MCP target {target!r} is not understood: use 'stdio:COMMAND ARGS' or an "
            "'http://host:port/mcp' URL (streamable HTTP)."
        )


def _text(result: Any) -> str:
    parts: list[str] = []
    for block in getattr(result, "content", None) or ():
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else block.model_dump_json())
    if not parts:
        structured = getattr(result, "structured_content", None) or getattr(
            result, "structuredContent", None
        )
        if structured is not None:
            import json

            return json.dumps(structured)
    return "\n".join(parts)


def _caller(target: str, name: str, env: dict[str, str] | None) -> Any:
    async def call(arguments: dict[str, Any]) -> str:
        try:
            async with _session(target, env) as session:
                result = await session.call_tool(name, arguments)
        except (ConfigError, McpToolError):
            raise
        except Exception as exc:  # the SDK's transport and protocol errors
            raise McpToolError(f"MCP server {target!r} failed on tool {name!r}: {exc}") from exc
        text = _text(result)
        if getattr(result, "is_error", None) or getattr(result, "isError", None):
            raise McpToolError(text or f"MCP tool {name!r} reported an error")
        return text

    return call


async def tools(
    target: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = 60.0,  # noqa: ASYNC109
    side_effects: bool = False,
) -> list[Tool]:
    """The tools of the MCP server at ``target`` (see module docstring).

    Args:
        target: ``"stdio:COMMAND ARGS"`` or an ``http(s)://`` streamable-HTTP URL.
        env: environment variables for a stdio server (it gets only a minimal environment
            otherwise: no secrets of this process).
        timeout: seconds one call may take.
        side_effects: mark every tool as having side effects.

    Raises:
        MissingDependencyError: the ``mcp`` SDK is not installed.
        ConfigError: the target is not understood.
        McpToolError: the server could not be reached or listed no tools.
    """
    try:
        async with _session(target, env) as session:
            listed = await session.list_tools()
    except ConfigError:
        raise
    except Exception as exc:
        if type(exc).__name__ == "MissingDependencyError":
            raise
        raise McpToolError(f"could not list the tools of MCP server {target!r}: {exc}") from exc
    found: list[Tool] = []
    for item in listed.tools:
        schema = getattr(item, "input_schema", None) or getattr(item, "inputSchema", None) or {}
        found.append(
            Tool.from_schema(
                item.name,
                item.description or "",
                dict(schema),
                _caller(target, item.name, env),
                timeout=timeout,
                side_effects=side_effects,
            )
        )
    return found
