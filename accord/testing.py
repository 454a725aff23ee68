"""Fakes for testing graphs without real models: for users' tests and accord's own.

- :class:`ScriptedBackend` answers each agent from a list of scripted replies, in order.
- :class:`FunctionBackend` answers with a (possibly async, possibly sleeping) Python function.
- :func:`forbid_real_backends` makes any real backend call raise, so a test cannot reach a
  provider by accident.
- ``ReplayBackend`` (from the run store) answers from a recorded run.
- :func:`tool_call` scripts a model's tool call: a reply that is a ``ToolCall`` or a list of
  them asks the agent to run those tools (for agents with ``tools=``).

Caveat: ScriptedBackend keys replies by the *agent name* in the request; two agents with one name
share a script.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from accord._fast import construct
from accord.backends import _guard
from accord.backends.base import Capabilities, Choice, Completion, Delta, Request, ToolCall
from accord.errors import ScriptExhaustedError
from accord.messages import Usage

if TYPE_CHECKING:
    from accord.store import ReplayBackend

__all__ = [
    "ScriptedBackend",
    "FunctionBackend",
    "forbid_real_backends",
    "estimate_tokens",
    "tool_call",
    "ReplayBackend",
]

Reply = str | Completion | BaseException | ToolCall | Sequence[ToolCall]


def tool_call(name: str, /, **arguments: Any) -> ToolCall:
    """A scripted tool call (its id is assigned by the agent's tool loop).

    Example::

        ScriptedBackend({"calc": [tool_call("add", a=2, b=3), "The sum is 5."]})
    """
    import json

    return ToolCall(id="", name=name, arguments=json.dumps(arguments))


def _calls_completion(request: Request, calls: Sequence[ToolCall], model: str) -> Completion:
    text = " ".join(f"{c.name}({c.arguments})" for c in calls)
    done = _completion_for(request, text, model)
    choice = construct(
        Choice, text="", finish_reason="tool_calls", logprobs=None, tool_calls=tuple(calls)
    )
    return construct(Completion, choices=(choice,), usage=done.usage, model=model, latency_s=0.0)


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters a token) used by fakes for usage accounting."""
    return max(1, (len(text) + 3) // 4) if text else 0


def _completion_for(request: Request, text: str, model: str) -> Completion:
    prompt = sum(estimate_tokens(m.content) for m in request.messages)
    usage = construct(
        Usage,
        requests=1,
        prompt_tokens=prompt,
        completion_tokens=estimate_tokens(text),
        cost=0.0,
        estimated=False,
        by_model=(),
    )
    choice = construct(Choice, text=text, finish_reason="stop", logprobs=None, tool_calls=())
    return construct(Completion, choices=(choice,), usage=usage, model=model, latency_s=0.0)


async def _stream_completion(completion: Completion) -> AsyncIterator[Delta]:
    words = completion.text.split(" ")
    for i, word in enumerate(words):
        yield Delta(text=word if i == 0 else " " + word)
    yield Delta(finish_reason=completion.finish_reason, usage=completion.usage)


class ScriptedBackend:
    """Answers each agent from its own list of scripted replies.

    Args:
        replies: ``{agent name: [reply, ...]}``. A reply is a string, a ``Completion``, or an
            exception instance to raise. The key ``"*"`` serves agents not named.
        delay: seconds to sleep before each reply (simulated latency).

    Example::

        backend = ScriptedBackend({"solver": ["draft 1", "draft 2"],
                                   "critic": ['{"approved": false, "issues": ["x"]}',
                                              '{"approved": true}']})
    """

    capabilities = Capabilities(streaming=True, structured_output=False, n=False)

    def __init__(
        self, replies: Mapping[str, Sequence[Reply]], *, delay: float = 0.0, name: str = "scripted"
    ) -> None:
        self.name = name
        self._replies = {agent: list(r) for agent, r in replies.items()}
        self._next: dict[str, int] = {}
        self.delay = delay
        self.requests: list[Request] = []
        """Every request received, in order."""

    def calls(self, agent: str | None = None) -> int:
        """How many requests an agent (or everyone) made."""
        if agent is None:
            return len(self.requests)
        return sum(1 for r in self.requests if r.agent == agent)

    def _take(self, request: Request) -> Completion:
        key = request.agent if request.agent in self._replies else "*"
        script = self._replies.get(key)
        if script is None:
            raise ScriptExhaustedError(
                f"ScriptedBackend has no replies for agent {request.agent!r}. Add "
                f"{request.agent!r}: [...] to the script (scripted agents: "
                + ", ".join(repr(a) for a in self._replies)
                + ").",
                agent=request.agent,
                calls=0,
            )
        index = self._next.get(key, 0)
        if index >= len(script):
            raise ScriptExhaustedError(
                f"agent {request.agent!r} asked for reply {index + 1}, but the script has only "
                f"{len(script)}. Script more replies, or check why the agent ran again "
                f"(round {request.round}).",
                agent=request.agent,
                calls=index + 1,
            )
        self._next[key] = index + 1
        reply = script[index]
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, Completion):
            return reply
        if isinstance(reply, ToolCall):
            return _calls_completion(request, (reply,), self.name)
        if not isinstance(reply, str):
            return _calls_completion(request, reply, self.name)
        return _completion_for(request, reply, self.name)

    async def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._take(request)

    async def stream(self, request: Request) -> AsyncIterator[Delta]:
        completion = await self.complete(request)
        async for delta in _stream_completion(completion):
            yield delta


FunctionResult = str | Completion | ToolCall | Sequence[ToolCall]
Fn = Callable[[Request], FunctionResult | Awaitable[FunctionResult]]


class FunctionBackend:
    """Answers with a Python function of the request.

    The function sees the whole :class:`~accord.backends.base.Request`: the calling agent
    (``request.agent``), its round, and the messages it would send. It may be async (and sleep,
    to simulate latency) and returns a string, a ``Completion``, or tool calls
    (:func:`tool_call`; ``request.tools`` lists the tools offered and the tool results so far
    are the ``"tool"`` messages of ``request.messages``).

    Example::

        async def model(request):
            await asyncio.sleep(0.05)
            return f"{request.agent} saw {len(request.messages)} messages"

        backend = FunctionBackend(model)
    """

    capabilities = Capabilities(streaming=True, structured_output=False, n=False)

    def __init__(self, fn: Fn, *, name: str = "function") -> None:
        self.name = name
        self._fn = fn
        self.requests: list[Request] = []

    def calls(self, agent: str | None = None) -> int:
        if agent is None:
            return len(self.requests)
        return sum(1 for r in self.requests if r.agent == agent)

    async def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        result: Any = self._fn(request)
        if type(result) is not str and inspect.isawaitable(result):
            result = await result
        if isinstance(result, Completion):
            return result
        if isinstance(result, ToolCall):
            return _calls_completion(request, (result,), self.name)
        if isinstance(result, list | tuple):
            return _calls_completion(request, result, self.name)
        return _completion_for(request, str(result), self.name)

    async def stream(self, request: Request) -> AsyncIterator[Delta]:
        completion = await self.complete(request)
        async for delta in _stream_completion(completion):
            yield delta


@contextmanager
def forbid_real_backends() -> Iterator[None]:
    """Inside this block, any real backend (OpenAI-compatible or local) raises ``UsageError``.

    Use it in a test (or a ``conftest.py`` fixture) so a forgotten real backend fails loudly
    instead of calling a provider.
    """
    previous = _guard.set_forbidden(True)
    try:
        yield
    finally:
        _guard.set_forbidden(previous)


def __getattr__(name: str) -> Any:
    # ReplayBackend lives with the run store, which is imported only when it is used.
    if name == "ReplayBackend":
        from accord.store import ReplayBackend

        return ReplayBackend
    raise AttributeError(f"module 'accord.testing' has no attribute {name!r}")
