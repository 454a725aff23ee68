"""``@accord.step``: a plain Python function as a graph node, for non-LLM work.

The function's parameters say what it reads: ``task`` (the task text), ``messages`` (all input
messages), ``ctx`` (the :class:`~accord.runtime.ActivationContext`), a parameter annotated with a
:class:`~accord.messages.Payload` subclass (the latest input carrying that payload), or any other
parameter (the latest input's text, or the task for an entry node). The return annotation declares
what it produces: a Payload subclass, or ``str``.

Caveat: a plain (sync) function runs on the event loop, which suits quick work (a calculator, a
parser); pass ``thread=True`` for blocking work (running tests, I/O) so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Callable
from typing import Any, overload

from accord.errors import ConfigError, MessageTypeError
from accord.messages import Message, Payload
from accord.runtime import ActivationContext, Join, NodeOutput

__all__ = ["step", "Step"]


def _payload_type(annotation: Any) -> type[Payload] | None:
    if isinstance(annotation, type) and issubclass(annotation, Payload):
        return annotation
    return None


class Step:
    """A graph node that runs a Python function (see module docstring)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        join: Join = "all",
        timeout: float | None = None,
        thread: bool = False,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.join: Join = join
        self.timeout = timeout
        self.thread = thread
        self._async = inspect.iscoroutinefunction(fn)
        try:
            hints = typing.get_type_hints(fn)
        except Exception as exc:
            raise ConfigError(
                f"step {self.name!r}: cannot read its type annotations ({exc})."
            ) from exc
        self._params: list[tuple[str, str, type[Payload] | None]] = []
        accepted: list[type[Payload]] = []
        for pname in inspect.signature(fn).parameters:
            ptype = _payload_type(hints.get(pname))
            if pname in ("task", "messages", "ctx"):
                self._params.append((pname, pname, None))
            elif ptype is not None:
                self._params.append((pname, "payload", ptype))
                accepted.append(ptype)
            else:
                self._params.append((pname, "text", None))
        text_params = any(kind in ("text", "messages", "ctx") for _, kind, _ in self._params)
        self.accepts: tuple[type[Payload], ...] | None = (
            tuple(accepted) if accepted and not text_params else None
        )
        ret = hints.get("return")
        self.produces: type[Payload] | None = _payload_type(ret)
        self._declares_text = ret is str
        if ret not in (None, str, type(None)) and self.produces is None:
            raise ConfigError(
                f"step {self.name!r} returns {ret!r}; a step must return str or an accord.Payload "
                "subclass. Change its return annotation."
            )

    def _arguments(self, ctx: ActivationContext) -> dict[str, Any]:
        args: dict[str, Any] = {}
        inputs = ctx.inputs
        for pname, kind, ptype in self._params:
            if kind == "task":
                args[pname] = ctx.task
            elif kind == "messages":
                args[pname] = list(inputs)
            elif kind == "ctx":
                args[pname] = ctx
            elif kind == "payload":
                assert ptype is not None
                found = _latest(inputs, ctx.history, ptype)
                if found is None:
                    raise MessageTypeError(
                        f"step {self.name!r} needs a {ptype.__name__} for parameter {pname!r}, but none "
                        "of its inputs carries one. Connect it to a node that produces "
                        f"{ptype.__name__}.",
                        node=self.name,
                        got=", ".join(_kinds(inputs)) or "nothing",
                        expected=ptype.__name__,
                    )
                args[pname] = found
            else:
                args[pname] = inputs[-1].text if inputs else ctx.task
        return args

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        args = self._arguments(ctx)
        if self._async:
            result = await self.fn(**args)
        elif self.thread:
            result = await asyncio.to_thread(self.fn, **args)
        else:
            result = self.fn(**args)
        if isinstance(result, Payload):
            if self._declares_text or (
                self.produces is not None and not isinstance(result, self.produces)
            ):
                expected = self.produces.__name__ if self.produces is not None else "str"
                raise MessageTypeError(
                    f"step {self.name!r} declares {expected} but returned {type(result).__name__}.",
                    node=self.name,
                    got=type(result).__name__,
                    expected=expected,
                )
            return NodeOutput(text=result.as_text(), payload=result)
        if isinstance(result, str) and self.produces is None:
            return NodeOutput(text=result)
        expected = self.produces.__name__ if self.produces is not None else "str"
        raise MessageTypeError(
            f"step {self.name!r} returned {type(result).__name__}, but it declares {expected}. Return "
            f"a {expected} (or change the return annotation).",
            node=self.name,
            got=type(result).__name__,
            expected=expected,
        )

    def __repr__(self) -> str:
        return f"Step({self.name!r})"

    @staticmethod
    async def invoke(fn: Any, *args: Any) -> Any:
        """Call a user's function (or a ``Step``'s) with the trailing ``args`` it takes.

        ``fn(task, candidate)`` gets both of ``invoke(fn, task, candidate)``; ``fn(candidate)``
        gets the last. A coroutine function is awaited; a ``Step`` made with ``thread=True``
        runs in a worker thread, so blocking work (a subprocess running tests) never blocks the
        event loop; any other sync function runs on the loop.

        Raises:
            ConfigError: ``fn`` is not callable.
        """
        threaded = isinstance(fn, Step) and fn.thread
        target = fn.fn if isinstance(fn, Step) else fn
        if not callable(target):
            raise ConfigError(f"expected a function or an accord step, not {type(fn).__name__}.")
        call_args = args[len(args) - _arity(target, len(args)) :]
        if threaded:
            return await asyncio.to_thread(target, *call_args)
        value = target(*call_args)
        if inspect.isawaitable(value):
            value = await value
        return value


def _arity(fn: Callable[..., Any], most: int) -> int:
    """How many positional arguments ``fn`` takes, at most ``most`` (all when it says *args)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return 1 if most else 0
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return most
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return min(len(positional), most)


def _latest(inputs: tuple[Message, ...], history: Any, ptype: type[Payload]) -> Payload | None:
    for m in reversed(inputs):
        if isinstance(m.payload, ptype):
            return m.payload
    for earlier_inputs, _ in reversed(history):
        for m in reversed(earlier_inputs):
            if isinstance(m.payload, ptype):
                return m.payload
    return None


def _kinds(inputs: tuple[Message, ...]) -> list[str]:
    return [type(m.payload).__name__ if m.payload is not None else "text" for m in inputs]


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    join: Join = "all",
    timeout: float | None = None,
    thread: bool = False,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    join: Join = "all",
    timeout: float | None = None,
    thread: bool = False,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Turn a function into a graph node.

    Example::

        @accord.step
        def run_tests(solution: accord.Solution) -> accord.Verdict:
            ok = check(solution.answer)
            return accord.Verdict(accepted=ok, reasons=[] if ok else ["a test failed"])
    """
    if fn is not None:
        return Step(fn)

    def wrap(f: Callable[..., Any]) -> Step:
        return Step(f, name=name, join=join, timeout=timeout, thread=thread)

    return wrap
