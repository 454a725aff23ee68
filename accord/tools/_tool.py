"""``Tool``: a Python function (sync or async) a model can call, with a validated signature.

A tool's JSON schema comes from its signature and docstring (:mod:`accord.tools._schema`). When a
model asks for a call, :meth:`Tool.invoke` validates the arguments, runs the function (a sync
function in a worker thread) within ``timeout``, and serialises the return value for the model.
It never raises for the model's mistakes or the tool's failures: they come back as a
:class:`ToolResult` with ``ok=False`` and a message the model can act on.

Caveat: a *sync* tool that exceeds its timeout is abandoned, not stopped (Python cannot kill a
thread): its result is dropped, but the function runs to its end in the background. Write tools
that may hang as ``async def`` (cancelled at the timeout) or run them in a subprocess
(:func:`accord.tools.python_exec`).

Seam for approval (not implemented yet): a tool that needs a person's approval will be marked
on the ``Tool`` and checked by the tool loop (:func:`accord.agents._tools.run_calls`) *before*
:meth:`Tool.invoke`; ``invoke`` itself never asks anyone.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import to_json

from accord.backends.base import ToolSpec
from accord.errors import ConfigError
from accord.tools._schema import arguments_model, json_schema, parse_docstring

__all__ = ["Tool", "ToolResult", "as_tool", "serialise", "MAX_RESULT_CHARS"]

MAX_RESULT_CHARS = 20_000
"""Results longer than this are cut (with a note) before they go back to the model."""

_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What one tool call gave back to the model.

    ``error`` is None on success, else ``"invalid_arguments"``, ``"unknown_tool"``,
    ``"exception"``, ``"timeout"`` or ``"limit"``; ``content`` is what the model reads.
    """

    call_id: str
    name: str
    content: str
    error: str | None = None
    duration_s: float = 0.0
    cached: bool = False
    """True when the result came from a recording (replay) instead of running the tool."""

    @property
    def ok(self) -> bool:
        return self.error is None


def serialise(value: Any, limit: int = MAX_RESULT_CHARS) -> str:
    """A tool's return value as text for the model: strings as they are, pydantic models and
    JSON-able values (dicts, lists, dataclasses, numbers, None) as JSON, anything else ``str()``;
    cut at ``limit`` characters with a note."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, BaseModel):
        text = value.model_dump_json()
    else:
        try:
            text = to_json(value).decode()
        except Exception:  # not JSON-able: the model gets its text form
            text = str(value)
    if len(text) > limit:
        text = f"{text[:limit]}\n[... cut: the result had {len(text)} characters]"
    return text


class Tool:
    """A function a model may call.

    Args:
        fn: the function (sync or async). Its parameters need type annotations; its docstring's
            summary describes the tool and its ``Args:`` section describes the parameters.
        name: the name the model sees (default: the function's name).
        description: what the tool does (default: the docstring's summary).
        timeout: seconds one call may take; an async tool is cancelled then, and the model is
            told the call timed out (see the module caveat for sync tools).
        side_effects: the tool changes the world (writes a file, sends a mail): it must not run
            twice for one call. Recorded runs never run a recorded call again.
        idempotent: running the tool twice for one call does no harm (for a tool with side
            effects, this allows a call whose outcome is unknown to be run again).
        max_result_chars: results longer than this are cut before the model reads them.
        thread: run a sync function in a worker thread (the default: the event loop and other
            calls go on meanwhile, at a cost of ~100-200 µs a call). ``thread=False`` calls it
            on the event loop: for quick pure functions only (no timeout can interrupt it).
        approval: a person approves each call before it runs: the tool loop asks
            (``ctx.ask(..., output=accord.Approval)``), the run pauses with ``status="waiting"``
            until the answer comes (``accord runs answer``, ``graph.resume(answers=...)``, or the
            prompt of ``accord run`` on a terminal), and a refused call goes back to the model as
            an error result with the person's reason. Needs a run store.

    Raises:
        ConfigError: ``fn`` is not callable, takes ``*args``/``**kwargs``, or the name is not
            usable by model APIs (letters, digits, ``_`` and ``-``, at most 64).

    Example::

        def add(a: int, b: int) -> int:
            \"\"\"Add two integers.

            Args:
                a: the first number.
                b: the second number.
            \"\"\"
            return a + b

        agent = accord.Agent("calc", backend, tools=[add])    # or tools=[accord.Tool(add)]
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        side_effects: bool = False,
        idempotent: bool = False,
        max_result_chars: int = MAX_RESULT_CHARS,
        thread: bool = True,
        approval: bool = False,
        _parameters: dict[str, Any] | None = None,
    ) -> None:
        if not callable(fn):
            raise ConfigError(f"a tool must be a function, not {fn!r}.")
        tool_name = name or getattr(fn, "__name__", "")
        if not tool_name or len(tool_name) > 64 or not set(tool_name) <= _NAME_OK:
            raise ConfigError(
                f"tool name {tool_name!r} is not usable: use 1-64 letters, digits, '_' or '-' "
                "(pass name=...)."
            )
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"tool {tool_name!r}: timeout must be positive, not {timeout}.")
        summary, params = parse_docstring(inspect.getdoc(fn))
        self.fn = fn
        self.name = tool_name
        self.description = description if description is not None else summary
        self.timeout = timeout
        self.side_effects = side_effects
        self.idempotent = idempotent
        self.max_result_chars = max_result_chars
        self.thread = thread
        self.approval = approval
        """A person approves each call before it runs (the run pauses until they answer)."""
        self.arguments: type[BaseModel] = (
            arguments_model(fn, tool_name, params) if _parameters is None else _Loose
        )
        """The pydantic model that validates a call's arguments."""
        self.parameters = json_schema(self.arguments) if _parameters is None else _parameters
        self._is_async = inspect.iscoroutinefunction(fn)

    @classmethod
    def from_schema(
        cls,
        name: str,
        description: str,
        parameters: dict[str, Any],
        call: Callable[[dict[str, Any]], Awaitable[Any]],
        **options: Any,
    ) -> Tool:
        """A tool described by a ready JSON schema (as MCP servers give them): arguments are
        checked to be a JSON object and passed to ``call`` as a dict; the server validates them.
        """

        async def _call(**arguments: Any) -> Any:
            return await call(arguments)

        schema = dict(parameters) or {"type": "object", "properties": {}}
        return cls(_call, name=name, description=description, _parameters=schema, **options)

    @property
    def spec(self) -> ToolSpec:
        """The tool as a model sees it."""
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    def validate(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        """The arguments as the function takes them.

        Raises:
            ValueError: not a JSON object, or they do not fit the signature (the message says
                which argument and why, for the model).
        """
        if isinstance(arguments, str):
            try:
                data = json.loads(arguments or "{}")
            except (ValueError, RecursionError) as exc:
                raise ValueError(f"the arguments are not valid JSON ({exc})") from None
        else:
            data = arguments
        if not isinstance(data, dict):
            raise ValueError("the arguments must be one JSON object")
        try:
            model = self.arguments.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ValueError(problems) from None
        if model.__class__ is _Loose:
            return dict(data)
        return {key: getattr(model, key) for key in type(model).model_fields}

    async def invoke(self, arguments: str | dict[str, Any], call_id: str = "") -> ToolResult:
        """Validate ``arguments``, run the tool within its timeout, and serialise the result.

        Never raises for invalid arguments, a failing tool or a timeout (they are results with
        ``error`` set); cancellation of the caller propagates.
        """
        started = time.perf_counter()

        def result(content: str, error: str | None = None) -> ToolResult:
            return ToolResult(call_id, self.name, content, error, time.perf_counter() - started)

        try:
            kwargs = self.validate(arguments)
        except ValueError as exc:
            return result(
                f"Error: invalid arguments for tool {self.name!r}: {exc}. Call it again with "
                "arguments that match its schema.",
                "invalid_arguments",
            )
        try:
            if self._is_async:
                value = await asyncio.wait_for(self.fn(**kwargs), self.timeout)
            elif not self.thread:
                value = self.fn(**kwargs)
            else:
                value = await asyncio.wait_for(asyncio.to_thread(self.fn, **kwargs), self.timeout)
            if inspect.isawaitable(value):  # a sync wrapper that returned a coroutine
                value = await asyncio.wait_for(value, self.timeout)
        except TimeoutError:
            return result(
                f"Error: tool {self.name!r} did not finish within {self.timeout} s and was "
                "cancelled.",
                "timeout",
            )
        except Exception as exc:
            return result(
                f"Error: tool {self.name!r} failed: {type(exc).__name__}: {str(exc)[:2000]}",
                "exception",
            )
        return result(serialise(value, self.max_result_chars))

    def __repr__(self) -> str:
        flags = "".join(
            f", {flag}=True" for flag in ("side_effects", "idempotent") if getattr(self, flag)
        )
        return f"Tool({self.name!r}{flags})"


class _Loose(BaseModel):
    """Arguments checked only to be an object (for tools with a foreign schema)."""

    model_config = ConfigDict(extra="allow")


def as_tool(item: Tool | Callable[..., Any]) -> Tool:
    """``item`` as a :class:`Tool` (plain functions are wrapped with the defaults)."""
    return item if isinstance(item, Tool) else Tool(item)
