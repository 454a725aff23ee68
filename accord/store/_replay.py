"""ReplayBackend: answer every model call from a recorded run, offline and deterministically.

The backend loads the model calls a run recorded (each activation's requests and responses) and
serves them again keyed by (agent, round), in the order they were made, so re-executing the graph
with it reproduces the recorded run exactly without any model. Use it in tests, to debug a run
step by step, or for demos. Tool calls are not run again: an agent's tool loop takes their
recorded results (:meth:`ReplayBackend.recorded_tool_result`).

Caveat: it answers calls made through the run's *default* backend, i.e. agents without a backend
of their own (``graph.run(task, backend=ReplayBackend(...))``); and a call the recording does not
have raises :class:`~accord.errors.ScriptExhaustedError` naming the agent and round.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from accord.backends.base import Capabilities, Completion, Delta, Request
from accord.errors import ScriptExhaustedError
from accord.store._base import RunStore

__all__ = ["ReplayBackend"]


class ReplayBackend:
    """A backend that answers from the model calls of run ``run_id`` (see module docstring).

    Args:
        run_id: the recorded run.
        store: the store holding it (a path or a ``RunStore``; default as for ``Graph.run``).
        strict: also check that each request's messages equal the recorded ones, and fail with
            the first difference (catches a prompt or template that changed since the run).

    Raises:
        ConfigError: the store has no run ``run_id``.

    Example::

        replay = ReplayBackend(run_id, store="runs.db")
        result = await graph.run(task, backend=replay, durability="off")
    """

    capabilities = Capabilities(streaming=True, structured_output=True, n=True)

    def __init__(
        self,
        run_id: str,
        *,
        store: RunStore | str | os.PathLike[str] | None = None,
        strict: bool = False,
    ) -> None:
        from accord.store._run import shared_store

        target = shared_store(store)
        self.run_id = run_id
        self.name = f"replay:{run_id}"
        self.strict = strict
        record = target.get_run(run_id)
        self.task = record.task
        self._calls: dict[tuple[str, int], list[tuple[Request, Completion]]] = {}
        self._tool_results: dict[tuple[str, int, str], str] = {}
        for activation in target.activations(run_id, calls=True):
            for request, completion in activation.calls:
                key = (request.agent or activation.node, request.round)
                self._calls.setdefault(key, []).append((request, completion))
                for m in request.messages:
                    if m.role == "tool" and m.tool_call_id is not None:
                        self._tool_results[(*key, m.tool_call_id)] = m.content
        self._next: dict[tuple[str, int], int] = {}
        self.requests: list[Request] = []
        """Every request received, in order."""

    def calls(self, agent: str | None = None) -> int:
        """How many requests an agent (or everyone) made."""
        if agent is None:
            return len(self.requests)
        return sum(1 for r in self.requests if r.agent == agent)

    def recorded_tool_result(self, agent: str, round: int, call_id: str) -> str | None:
        """The recorded result of tool call ``call_id`` (the agent's tool loop uses it instead
        of running the tool again), or None."""
        return self._tool_results.get((agent, round, call_id))

    async def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        key = (request.agent, request.round)
        recorded = self._calls.get(key, [])
        index = self._next.get(key, 0)
        if index >= len(recorded):
            have = "no call" if not recorded else f"only {len(recorded)} call(s)"
            raise ScriptExhaustedError(
                f"run {self.run_id!r} recorded {have} for agent {request.agent!r} in round "
                f"{request.round}, and the replay asked for call {index + 1}. The graph or its "
                "inputs differ from the recorded run; replay it with the graph that made it.",
                agent=request.agent,
                calls=index + 1,
            )
        self._next[key] = index + 1
        old, completion = recorded[index]
        if self.strict and old.messages != request.messages:
            diff = next(
                (
                    i
                    for i, (a, b) in enumerate(zip(old.messages, request.messages, strict=False))
                    if a != b
                ),
                min(len(old.messages), len(request.messages)),
            )
            raise ScriptExhaustedError(
                f"agent {request.agent!r}, round {request.round}: the request differs from the "
                f"recorded one at chat message {diff} (strict replay of run {self.run_id!r}).",
                agent=request.agent,
                calls=index + 1,
            )
        return completion

    async def stream(self, request: Request) -> AsyncIterator[Delta]:
        completion = await self.complete(request)
        words = completion.text.split(" ")
        for i, word in enumerate(words):
            yield Delta(text=word if i == 0 else " " + word)
        yield Delta(finish_reason=completion.finish_reason, usage=completion.usage)

    def __repr__(self) -> str:
        return f"ReplayBackend({self.run_id!r})"
