"""Tools: Python functions a model can call, code execution, and MCP servers' tools.

- :class:`Tool` wraps a function (its signature and docstring become the schema the model sees);
  ``Agent(..., tools=[fn, ...])`` accepts plain functions too.
- :func:`python_exec` runs model-written Python in a restricted subprocess (usable as a tool or
  from a step).
- ``accord.mcp.tools(...)`` lists an MCP server's tools as :class:`Tool` objects.
"""

from __future__ import annotations

from accord.tools._exec import ExecResult, python_exec, python_tool
from accord.tools._journal import Journal, call_key, journal_for
from accord.tools._tool import MAX_RESULT_CHARS, Tool, ToolResult, as_tool, serialise

__all__ = [
    "Tool",
    "ToolResult",
    "as_tool",
    "serialise",
    "python_exec",
    "python_tool",
    "ExecResult",
    "MAX_RESULT_CHARS",
    "Journal",
    "call_key",
    "journal_for",
]
