"""What the scheduler needs from a node, and what a node gets while it runs.

A node is anything with a ``name``, a join policy, declared ``accepts``/``produces`` payload types,
an optional ``timeout``, and ``async __call__(ctx) -> NodeOutput``. Agents, steps and subgraphs
implement it. A node makes model calls only through :meth:`ActivationContext.complete`, which is
where budgets are checked, usage is counted and tokens are streamed as events.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from accord import _crash, _otel
from accord.backends.base import Backend, Choice, Completion, Request
from accord.errors import ConfigError, UsageError
from accord.messages import ZERO_USAGE, Message, Payload, Usage
from accord.runtime import _input

if TYPE_CHECKING:
    from accord.runtime._scheduler import _Run

__all__ = ["Node", "NodeOutput", "ActivationContext", "report_retry", "current_context"]

Join = Literal["all", "any"]


@dataclass(slots=True)
class NodeOutput:
    """What one activation of a node returns; the scheduler turns it into a :class:`Message`."""

    text: str
    payload: Payload | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Node(Protocol):
    """A node of a graph (see module docstring)."""

    name: str
    join: Join
    accepts: tuple[type[Payload], ...] | None
    """Payload types the node reads (None: anything, text included)."""
    produces: type[Payload] | None
    """Payload type of its messages (None: plain text)."""
    timeout: float | None

    async def __call__(self, ctx: ActivationContext) -> NodeOutput: ...


_current: contextvars.ContextVar[ActivationContext | None] = contextvars.ContextVar(
    "accord_activation", default=None
)


def current_context() -> ActivationContext | None:
    """The activation running in this task, if any (backends use it to report retries)."""
    return _current.get()


def report_retry(
    *, attempt: int, delay_s: float, error: str, status_code: int | None = None
) -> None:
    """Tell the running graph that a model call will be retried (emits a ``retry`` event).

    Backends call this from their retry layer; outside a graph run it does nothing.
    """
    ctx = _current.get()
    if ctx is not None:
        ctx._run.on_retry(ctx, attempt, delay_s, error, status_code)


class ActivationContext:
    """One activation of one node: its inputs, its own earlier rounds, and the gate to models."""

    __slots__ = (
        "_run",
        "node",
        "local",
        "round",
        "inputs",
        "history",
        "activation_id",
        "usage",
        "started_at",
        "calls",
        "asks",
    )

    def __init__(
        self,
        run: _Run,
        node: str,
        round: int,
        inputs: tuple[Message, ...],
        history: Sequence[tuple[tuple[Message, ...], Message]],
        activation_id: str,
        local: str | None = None,
    ) -> None:
        self._run = run
        self.node = node
        """The node's name in the run: ``outer/inner`` for a subgraph's node."""
        self.local = node if local is None else local
        """The node's name in its own graph (``inner``)."""
        self.round = round
        self.inputs = inputs
        """Messages that triggered this activation (the task message for an entry's round 0)."""
        self.history = history
        """This node's earlier rounds in this run: (inputs, output) pairs, oldest first."""
        self.activation_id = activation_id
        self.usage = ZERO_USAGE
        """What this activation's model calls cost so far."""
        self.started_at = time.time()
        self.calls: list[tuple[Request, Completion]] | None = (
            [] if run.recorder is not None else None
        )
        """This activation's model calls (request, response), kept when the run is recorded."""
        self.asks = 0
        """How many questions this activation has asked (numbers the next one's id)."""

    @property
    def run_id(self) -> str:
        return self._run.run_id

    @property
    def memo(self) -> dict[Any, Any]:
        """A dict that lives as long as the run, for nodes to cache derived values (never state
        that changes results: a resumed run starts with it empty)."""
        return self._run.memo

    @property
    def task(self) -> str:
        """The run's task text."""
        return self._run.task

    @property
    def default_backend(self) -> Backend | None:
        """The backend given to ``graph.run(backend=...)``, for nodes that have none."""
        return self._run.default_backend

    def resolve_backend(self, backend: Backend | None) -> Backend:
        found = backend if backend is not None else self._run.default_backend
        if found is None:
            raise ConfigError(
                f"node {self.node!r} needs a model but has no backend. Give it one "
                f"(Agent({self.node!r}, backend=accord.backend('openai:gpt-4o-mini'))) or pass a "
                "default to graph.run(task, backend=...)."
            )
        return found

    async def complete(self, request: Request, backend: Backend | None = None) -> Completion:
        """Make one model call through the run: budgets first, then the call, then usage.

        Streams the reply as ``token`` events when someone listens for them.

        Raises:
            ConfigError: no backend for this node.
        """
        run = self._run
        chosen = backend if backend is not None else run.default_backend
        if chosen is None:
            chosen = self.resolve_backend(None)  # raises, saying how to give the node a model
        if _otel.TRACER is not None:  # accord.instrument(): this call becomes a span
            chosen = _otel.TRACER.backend(chosen, self)
        if run.until is None and not _crash.ARMED and not run.wants_tokens:
            completion = await chosen.complete(request)  # the common path: nothing to check
        else:
            completion = await self._checked_call(run, chosen, request)
        if self.calls is not None:
            self.calls.append((request, completion))
        usage = completion.usage
        if not usage.requests:
            usage = usage + Usage(requests=1)
        self.usage = usage if not self.usage.requests else self.usage + usage
        run.add_usage(self.node, usage)
        return completion

    async def ask(
        self,
        question: str,
        output: Any = str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (it outlives the process: see below)
        on_timeout: Any = _input.STOP,
        key: str | None = None,
    ) -> Any:
        """Ask a person ``question`` and return their answer as an ``output``.

        The answer comes from the store (a resumed run), the run's ``ask`` handler (``accord
        run`` on a terminal), or, with ``timeout``, from the store while the process waits;
        otherwise this activation blocks and the run ends ``"waiting"`` once nothing else can
        run (see :mod:`accord.runtime._input`). ``graph.resume(run_id, answers={id: value})``
        continues it: this activation runs again and this call returns the recorded answer.

        Args:
            question: the text shown to the person.
            output: the answer's type: a Payload subclass (``accord.Approval``), ``str``,
                ``int``, ``bool``, a ``Literal[...]``.
            timeout: seconds to wait for an answer (counted from when it was first asked).
            on_timeout: the answer to use when the wait ends, or ``"stop"`` to stop the run.
            key: names the question instead of its position: its id becomes
                ``node/round/KEY``, so an answer stays with what was asked even when the
                activation asks in another order on resume (a tool loop approving a call uses
                the call, e.g. ``key="approve-" + digest_of(tool, arguments)``).

        Raises:
            UsageError: the run has no run store (a pause needs one).
            ConfigError: ``output`` has no JSON schema.
        """
        run = self._run
        gate = run.root.recorder
        if not isinstance(gate, _input.InputGate):
            raise UsageError(
                f"node {self.node!r} asked a person a question, but the run has no run store: "
                "a pause for an answer needs one to keep the run's state. Run it with "
                "graph.run(task, store='runs.db') (or accord.configure(store=...))."
            )
        index = self.asks
        self.asks += 1
        qid = _input.question_id(self.node, self.round, index, key)
        found, value = gate.recorded(qid)
        if not found:
            q = _input.Question(
                id=qid,
                run_id=run.run_id,
                node=self.node,
                round=self.round,
                question=question,
                answer_schema=_input.schema_of(output),
                asked_at=time.time(),
                timeout=timeout,
            )
            asked = gate.asked_at(q)
            if asked != q.asked_at:
                q = q.model_copy(update={"asked_at": asked})
            run.on_input(self, q, None, requested=True)
            deadline = None if timeout is None else asked + timeout
            found, value = await _input.wait_for_answer(gate, q, _input.HANDLER.get(), deadline)
            if found:
                _input.check_answer(q.answer_schema, _input.to_json(value), qid)
                gate.answered(qid, _input.to_json(value))
            elif deadline is not None:
                if isinstance(on_timeout, str) and on_timeout == _input.STOP:
                    run.stop(
                        f"question {qid!r} to {self.node!r} got no answer within {timeout} s "
                        "(on_timeout='stop')"
                    )
                value = _input.to_json(on_timeout)
                gate.answered(qid, value)
            else:
                run.block(self, q)
                raise _input.Blocked(qid)
        answer = _input.parse_answer(output, value, qid)
        run.on_input(self, None, qid, requested=False)
        return answer

    async def _checked_call(self, run: _Run, chosen: Backend, request: Request) -> Completion:
        reservation = run.reserve(request)
        try:
            if _crash.ARMED:
                _crash.crash_point("before_model_call", node=self.node, round=self.round)
            # Requests that offer tools are not streamed: their calls arrive whole.
            if (
                run.wants_tokens
                and chosen.capabilities.streaming
                and request.n == 1
                and not request.tools
            ):
                completion = await self._stream(chosen, request)
            else:
                completion = await chosen.complete(request)
        finally:
            run.release(reservation)
        if _crash.ARMED:
            _crash.crash_point(
                "after_model_response_before_persist", node=self.node, round=self.round
            )
        return completion

    async def _stream(self, backend: Backend, request: Request) -> Completion:
        parts: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        started = time.perf_counter()
        async with contextlib.aclosing(backend.stream(request)) as deltas:  # type: ignore[type-var]
            async for delta in deltas:
                if delta.text:
                    parts.append(delta.text)
                    self._run.on_token(self, delta.text)
                if delta.finish_reason is not None:
                    finish = delta.finish_reason
                if delta.usage is not None:
                    usage = delta.usage
        text = "".join(parts)
        return Completion(
            choices=(Choice(text=text, finish_reason=finish),),
            usage=usage or Usage(requests=1),
            model=backend.name,
            latency_s=time.perf_counter() - started,
        )
