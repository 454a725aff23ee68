"""The async scheduler: a loop that owns run state and a runner that owns concurrency.

Each ready activation runs as its own task as soon as its join policy is met, so independent
branches run concurrently and no branch waits for an unrelated one (there is no global barrier).
When exactly one activation is ready and nothing else runs, it is awaited inline (no task), which
keeps a chain's per-step cost low. Nothing started here outlives :func:`execute`: on an error, a
stop or a cancellation every in-flight activation is cancelled and awaited.

Every way a run ends is reported the same way: a ``run_finished`` event (with the output so far),
and for a failure an exception with the partial :class:`RunResult` as ``err.result``. A node's
:class:`~accord.errors.RunError` (or any accord error, such as a missing backend's
``ConfigError``) keeps its type; anything else a node raises (a ``ValueError`` in
a step, a failing ``when=`` condition, its own ``TimeoutError``) becomes a
:class:`~accord.errors.NodeError` with the original as ``__cause__``. Only the run's own deadline
(``until=Timeout(...)``) stops a run as ``"stopped"``: it is told apart by its scope, not by the
exception type.

A subgraph runs inside its parent run (:func:`run_inner`): its activations count against the
parent's step limit and budgets, are cancelled with it, are recorded with it (so resume skips
them), and appear in events as ``outer/inner``.

Caveat: errors fail fast: the first failing activation cancels the others and its error is raised
with the partial :class:`RunResult` attached as ``err.result``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, Protocol

from accord import _otel
from accord._fast import construct
from accord._log import get_logger
from accord.backends.base import Backend, Request
from accord.errors import (
    AccordError,
    MessageTypeError,
    NodeError,
    NodeTimeoutError,
    StepLimitError,
)
from accord.messages import ZERO_USAGE, Message, Usage
from accord.runtime import events as ev
from accord.runtime._input import Blocked, Question
from accord.runtime._node import ActivationContext, NodeOutput, _current
from accord.runtime._plan import CompiledGraph, RunState, deliver, new_state, take_ready
from accord.runtime.result import ActivationTiming, RunResult, RunStatus
from accord.runtime.termination import Condition, RunSnapshot

__all__ = ["execute", "run_inner", "ActivationCache", "ActivationRecorder", "EventSink"]

DEFAULT_MAX_STEPS = 50

_UNUSED_SNAPSHOT = RunSnapshot()
"""Stands in for the snapshot of runs without termination conditions (never read or written)."""

log = get_logger(__name__)

EventSink = Callable[[Any], None]


class ActivationCache:
    """Outputs of activations finished in an earlier attempt of this run (used by resume)."""

    def __init__(self, outputs: Mapping[str, Message] | None = None) -> None:
        self.outputs = dict(outputs or {})

    def get(self, activation_id: str) -> Message | None:
        return self.outputs.get(activation_id)


class ActivationRecorder(Protocol):
    """Where finished activations go to be made durable (the run store's recorder)."""

    def activation(self, ctx: ActivationContext, message: Message) -> None:
        """Record a finished activation; called before its message is delivered."""
        ...

    def event(self, event: Any) -> None:
        """Record one of the rare events a run keeps beside its activations (retries, tool
        calls and their results); frequent ones (tokens, activation starts) never come here."""
        ...


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def activation_id(run_id: str, node: str, round: int) -> str:
    """The id of activation (run, node, round); also the id of the message it produces."""
    return f"{run_id}/{node}/{round}"


class _Run:
    """State of one run, owned by the loop. Activations reach it through their context.

    A subgraph's run is a ``_Run`` too, with a ``parent``: it shares the root run's step count,
    budgets, events, recorder and cache, and names its nodes ``prefix + name`` outside itself.
    """

    __slots__ = (
        "blocked",
        "cache",
        "debug",
        "default_backend",
        "depth",
        "history",
        "max_steps",
        "memo",
        "messages",
        "parent",
        "plan",
        "prefix",
        "questions",
        "recorder",
        "reserved_requests",
        "reserved_tokens",
        "root",
        "run_id",
        "sink",
        "snapshot",
        "started_at",
        "state",
        "steps_started",
        "t0",
        "task",
        "timings",
        "until",
        "usages",
        "wants_tokens",
    )

    def __init__(
        self,
        plan: CompiledGraph,
        task: str,
        run_id: str,
        default_backend: Backend | None,
        until: Condition | None,
        max_steps: int,
        sink: EventSink | None,
        wants_tokens: bool,
        cache: ActivationCache | None,
        recorder: ActivationRecorder | None = None,
        parent: _Run | None = None,
        prefix: str = "",
    ) -> None:
        self.plan = plan
        self.parent = parent
        self.root: _Run = self if parent is None else parent.root
        self.prefix = prefix
        """Put before this run's node names in events, activation ids and records (a
        subgraph's: ``outer/``)."""
        self.task = task
        self.run_id = run_id
        self.default_backend = default_backend
        self.until = until
        self.max_steps = max_steps
        self.sink = sink
        self.wants_tokens = wants_tokens and sink is not None
        self.cache = cache
        self.recorder = recorder
        """Records finished activations (None: durability "off")."""
        self.state: RunState = new_state(plan)
        self.snapshot: RunSnapshot = (
            _UNUSED_SNAPSHOT
            if until is None
            else RunSnapshot()
            if parent is None
            else parent.root.snapshot
        )
        """What termination conditions read (only used, and only made, when there are some)."""
        self.usages: list[tuple[str, Usage]] = []
        """Every model call's usage, by node, in the order they finished (summed at the end)."""
        self.reserved_requests = 0
        self.reserved_tokens = 0
        """Calls in flight and their estimated prompt tokens: budgets count them as spent."""
        self.history: dict[str, list[tuple[tuple[Message, ...], Message]]] = {}
        """Each node's (inputs, output) pairs, created when the node first runs."""
        self.messages: list[Message] = []
        self.depth: dict[str, int] = {}
        self.timings: list[tuple[str, int, float, float, bool]] = []
        self.started_at = time.time()
        self.t0: float = time.perf_counter() if parent is None else parent.root.t0
        self.steps_started = 0
        self.debug = log.debug_enabled()
        self.memo: dict[Any, Any] = {}
        self.blocked = 0
        """Activations of this run waiting for a person's answer."""
        self.questions: list[Question] = []
        """(root) The questions those activations wait for, in the order they were asked."""
        """Per-run memo for nodes (an agent's rendered prompts of earlier rounds)."""

    # ---------------------------------------------------------------- called by contexts

    def reserve(self, request: Request) -> int:
        """Check the budgets before a model call and count the call as in flight.

        Calls in flight count as spent (a request each, their estimated prompt tokens), so
        concurrent activations cannot overrun a budget together. Returns the reservation to pass
        to :meth:`release` once the call is over.

        Raises:
            _Stop: a budget would be exceeded; the call must not be made.
        """
        if self.until is None:
            return 0
        if self.parent is not None:
            return self.root.reserve(request)
        estimate = sum(len(m.content) for m in request.messages) // 4
        snap = self.snapshot
        snap.elapsed_s = time.perf_counter() - self.t0
        snap.next_prompt_tokens = estimate
        spent = snap.usage
        if self.reserved_requests:
            snap.usage = spent + Usage(
                requests=self.reserved_requests, prompt_tokens=self.reserved_tokens
            )
        try:
            reason = self.until.before_call(snap)
        finally:
            snap.usage = spent
        if reason:
            raise _Stop(reason)
        self.reserved_requests += 1
        self.reserved_tokens += estimate
        return estimate

    def release(self, reservation: int) -> None:
        if self.parent is not None:
            self.root.release(reservation)
        elif self.until is not None:
            self.reserved_requests -= 1
            self.reserved_tokens -= reservation

    def add_usage(self, node: str, usage: Usage) -> None:
        self.usages.append((node, usage))
        if self.parent is not None:
            self.parent.add_usage(node, usage)
        elif self.until is not None:
            self.snapshot.usage = self.snapshot.usage + usage

    def total_usage(self) -> Usage:
        if self.until is not None and self.parent is None:
            return self.snapshot.usage
        total = ZERO_USAGE
        for _, usage in self.usages:
            total = total + usage
        return total

    def usage_by_node(self) -> dict[str, Usage]:
        by_node: dict[str, Usage] = {}
        for node, usage in self.usages:
            found = by_node.get(node)
            by_node[node] = usage if found is None else found + usage
        return by_node

    def on_token(self, ctx: ActivationContext, text: str) -> None:
        if self.sink is not None:
            self.sink(
                construct(
                    ev.TokenEvent,
                    run_id=self.run_id,
                    at=time.time(),
                    kind="token",
                    node=ctx.node,
                    round=ctx.round,
                    text=text,
                )
            )

    def on_retry(
        self,
        ctx: ActivationContext,
        attempt: int,
        delay_s: float,
        error: str,
        status_code: int | None,
    ) -> None:
        log.info(
            "retry_scheduled",
            node=ctx.node,
            round=ctx.round,
            attempt=attempt,
            delay_s=delay_s,
            status_code=status_code,
        )
        if self.sink is not None or self.recorder is not None:
            self.note(
                construct(
                    ev.RetryEvent,
                    run_id=self.run_id,
                    at=time.time(),
                    kind="retry",
                    node=ctx.node,
                    round=ctx.round,
                    attempt=attempt,
                    delay_s=delay_s,
                    error=error,
                    status_code=status_code,
                )
            )

    def note(self, event: Any) -> None:
        """Emit a rare event (a retry, a tool call or result) that the run store also keeps."""
        if self.sink is not None:
            self.sink(event)
        if self.recorder is not None:
            self.recorder.event(event)

    def on_input(
        self, ctx: ActivationContext, question: Question | None, qid: str | None, requested: bool
    ) -> None:
        """Emit ``input_requested`` (``question``) or ``input_received`` (``qid``)."""
        if self.sink is None:
            return
        if requested:
            assert question is not None
            self.sink(
                construct(
                    ev.InputRequested,
                    run_id=self.run_id,
                    at=time.time(),
                    kind="input_requested",
                    node=ctx.node,
                    round=ctx.round,
                    question_id=question.id,
                    question=question.question,
                    answer_schema=question.answer_schema,
                    timeout=question.timeout,
                )
            )
        else:
            self.sink(
                construct(
                    ev.InputReceived,
                    run_id=self.run_id,
                    at=time.time(),
                    kind="input_received",
                    node=ctx.node,
                    round=ctx.round,
                    question_id=qid,
                )
            )

    def block(self, ctx: ActivationContext, question: Question) -> None:
        """Note that ``ctx`` waits for an answer to ``question`` (the run will end waiting)."""
        self.root.questions.append(question)

    def stop(self, reason: str) -> NoReturn:
        """Stop the run (a question's ``on_timeout="stop"``)."""
        raise _Stop(reason)

    # ---------------------------------------------------------------- activations

    def begin(self, node: str, inputs: tuple[Message, ...]) -> ActivationContext:
        root = self.root
        if root.steps_started >= root.max_steps:
            raise self._step_limit(node)
        root.steps_started += 1
        started = self.state.started
        rnd = started.get(node, 0)
        started[node] = rnd + 1
        history = self.history.get(node)
        if history is None:
            history = self.history[node] = []
        name = self.prefix + node if self.prefix else node
        aid = activation_id(self.run_id, name, rnd)
        ctx = ActivationContext(self, name, rnd, inputs, history, aid, node)
        if self.sink is not None:
            self.sink(
                construct(
                    ev.ActivationStarted,
                    run_id=self.run_id,
                    at=ctx.started_at,
                    kind="activation_started",
                    node=name,
                    round=rnd,
                    activation_id=aid,
                    inputs=tuple(m.id for m in inputs),
                )
            )
        return ctx

    def _step_limit(self, node: str) -> StepLimitError:
        """The error for a run that reached its step limit, saying what happened."""
        root = self.root
        limit = root.max_steps
        name = self.prefix + node
        loops = any(e.back for edges in self.plan.out_edges.values() for e in edges)
        if not loops and self.parent is None:
            size = len(self.plan.order)
            message = (
                f"the run reached its step limit of {limit} activations on a graph of {size} "
                f"nodes without loops, before {name!r} could run. Raise the limit: "
                f"graph.run(..., max_steps={max(size * 2, limit * 2)}) or "
                f"Graph(..., max_steps=...)."
            )
        elif not self.state.started.get(node):
            message = (
                f"the run reached its step limit of {limit} activations before {name!r} ran for "
                "the first time: the graph needs more activations than that. Raise the limit "
                f"(graph.run(..., max_steps={limit * 2}) or Graph(..., max_steps=...))."
            )
        else:
            message = (
                f"the run reached its step limit of {limit} activations and {name!r} was about "
                f"to run again (round {self.state.started[node]}). A loop may not be converging: "
                "give its back edge a max_rounds or an exit condition, or raise "
                "graph.run(max_steps=...)."
            )
        return StepLimitError(message, limit=limit, last_node=name)

    async def perform(self, ctx: ActivationContext) -> tuple[Message, bool]:
        """Run one activation (or take it from the cache); returns its message and whether cached."""
        if self.cache is not None:
            cached = self.cache.get(ctx.activation_id)
            if cached is not None:
                return cached, True
        node = self.plan.nodes[ctx.local]
        token = _current.set(ctx)
        try:
            if node.timeout is not None:
                try:
                    async with asyncio.timeout(node.timeout):
                        out = await node(ctx)
                except TimeoutError:
                    raise NodeTimeoutError(
                        f"node {ctx.node!r} (round {ctx.round}) took longer than its timeout of "
                        f"{node.timeout} s and was cancelled. Raise its timeout or make it faster.",
                        node=ctx.node,
                        round=ctx.round,
                        timeout=node.timeout,
                    ) from None
            else:
                out = await node(ctx)
        except (AccordError, _Stop, Blocked):
            raise  # accord's own errors keep their type (they say who must fix what)
        except Exception as exc:
            raise NodeError(
                f"node {ctx.node!r} (round {ctx.round}) failed: {type(exc).__name__}: {exc}",
                node=ctx.node,
                round=ctx.round,
            ) from exc
        finally:
            _current.reset(token)
        return self._message(ctx, out), False

    def _message(self, ctx: ActivationContext, out: NodeOutput) -> Message:
        node = self.plan.nodes[ctx.local]
        if not isinstance(out, NodeOutput):
            raise MessageTypeError(
                f"node {ctx.node!r} returned {type(out).__name__}, not a NodeOutput. Nodes must "
                "return NodeOutput (steps may return text or a Payload).",
                node=ctx.node,
                got=type(out).__name__,
                expected="NodeOutput",
            )
        produces = node.produces
        if produces is not None and not isinstance(out.payload, produces):
            got = type(out.payload).__name__ if out.payload is not None else "text"
            raise MessageTypeError(
                f"node {ctx.node!r} declares that it produces {produces.__name__} but returned {got}. "
                "Return the declared type, or change what the node declares.",
                node=ctx.node,
                got=got,
                expected=produces.__name__,
            )
        return construct(
            Message,
            id=ctx.activation_id,
            run_id=self.run_id,
            sender=ctx.local,
            recipients=(),
            text=out.text,
            payload=out.payload,
            usage=ctx.usage,
            parents=tuple(m.id for m in ctx.inputs),
            round=ctx.round,
            created_at=time.time(),
            metadata=out.metadata,
        )

    def finish(
        self, ctx: ActivationContext, message: Message, cached: bool
    ) -> list[tuple[str, tuple[Message, ...]]]:
        """Fold a finished activation into the run; returns the activations it made ready."""
        plan, state = self.plan, self.state
        targets = deliver(plan, state, message)
        if targets:
            # Not yet published: no node has run on it, no event or record holds it.
            message.__dict__["recipients"] = tuple(targets)
        if self.recorder is not None and not cached:
            # Committed (in "sync" mode) before any activation it makes ready can start.
            self.recorder.activation(ctx, message)
        parents, depth = message.parents, self.depth
        if len(parents) == 1:
            depth[message.id] = 1 + depth.get(parents[0], 0)
        else:
            depth[message.id] = 1 + max((depth.get(p, 0) for p in parents), default=0)
        self.messages.append(message)
        self.history[ctx.local].append((ctx.inputs, message))
        if cached:
            self.add_usage(ctx.node, message.usage)
        now = time.time()
        duration = 0.0 if cached else now - ctx.started_at
        self.timings.append((ctx.node, ctx.round, ctx.started_at, duration, cached))
        if self.sink is not None:
            shown = message
            if self.prefix:  # outside the subgraph, its nodes are named by their path
                shown = construct(Message, **{**message.__dict__, "sender": ctx.node})
            self.sink(
                construct(
                    ev.MessageEvent, run_id=self.run_id, at=now, kind="message", message=shown
                )
            )
            self.sink(
                construct(
                    ev.ActivationFinished,
                    run_id=self.run_id,
                    at=now,
                    kind="activation_finished",
                    node=ctx.node,
                    round=ctx.round,
                    activation_id=ctx.activation_id,
                    duration_s=duration,
                    usage=message.usage,
                    cached=cached,
                )
            )
        if self.debug:
            log.debug(
                "activation_finished",
                run_id=self.run_id,
                node=ctx.node,
                round=ctx.round,
                cached=cached,
                duration_s=duration,
            )
        if self.until is not None:
            snap = self.snapshot
            snap.steps += 1
            snap.rounds[ctx.node] = snap.rounds.get(ctx.node, 0) + 1
            snap.last = message
            snap.elapsed_s = time.perf_counter() - self.t0
            reason = self.until.after_message(snap)
            if reason:
                raise _Stop(reason)
        if len(targets) == 1:
            name = targets[0]
            return [(name, inputs) for inputs in take_ready(plan, state, name)]
        ready: list[tuple[str, tuple[Message, ...]]] = []
        for name in sorted(set(targets), key=plan.index.__getitem__):
            for inputs in take_ready(plan, state, name):
                ready.append((name, inputs))
        return ready

    def result(self, status: RunStatus, stop_reason: str | None) -> RunResult:
        index = self.plan.index
        transcript = sorted(
            self.messages, key=lambda m: (self.depth[m.id], index[m.sender], m.round)
        )
        outputs: dict[str, Message] = {}
        for m in transcript:
            if m.sender in self.plan.exits:
                outputs[m.sender] = m
        output = next((m for m in reversed(transcript) if m.sender in self.plan.exits), None)
        return construct(
            RunResult,
            run_id=self.run_id,
            graph=self.plan.name,
            task=self.task,
            status=status,
            stop_reason=stop_reason,
            output=output,
            outputs=outputs,
            transcript=transcript,
            usage=self.total_usage(),
            usage_by_agent=self.usage_by_node(),
            started_at=self.started_at,
            duration_s=time.perf_counter() - self.t0,
            timings=[
                construct(ActivationTiming, node=n, round=r, started_at=t, duration_s=d, cached=c)
                for n, r, t, d, c in self.timings
            ],
            questions=list(self.questions) if status == "waiting" else [],
        )


async def execute(
    plan: CompiledGraph,
    task: str,
    *,
    run_id: str,
    default_backend: Backend | None = None,
    until: Condition | None = None,
    max_steps: int | None = None,
    sink: EventSink | None = None,
    wants_tokens: bool = False,
    cache: ActivationCache | None = None,
    recorder: ActivationRecorder | None = None,
) -> RunResult:
    """Run ``plan`` on ``task`` to the end and return its result (see module docstring).

    ``max_steps`` defaults to the graph's own limit, else 50. ``recorder`` (the run store's) gets
    each finished activation that did not come from ``cache``, before its message is delivered.

    Raises:
        RunError: a node failed (a :class:`~accord.errors.NodeError` when it raised anything but a
            ``RunError``), with the partial result as ``err.result``; ``run_finished`` was
            emitted with status ``"failed"``.
    """
    if _otel.TRACER is not None:  # accord.instrument(): spans from the run's events
        sink = _otel.TRACER.run_sink(run_id, plan.name, task, sink)
    steps = max_steps or plan.max_steps or DEFAULT_MAX_STEPS
    run = _Run(
        plan, task, run_id, default_backend, until, steps, sink, wants_tokens, cache, recorder
    )
    if sink is not None:
        sink(
            construct(
                ev.RunStarted,
                run_id=run_id,
                at=run.started_at,
                kind="run_started",
                graph=plan.name,
                task=task,
            )
        )
    if run.debug:
        log.debug("run_started", run_id=run_id, graph=plan.name)
    task_message = _task_message(run, plan)
    status: RunStatus = "completed"
    reason: str | None = None
    deadline = until.deadline_s() if until is not None else None
    scope: asyncio.Timeout | None = None
    try:
        if deadline is not None:
            async with asyncio.timeout(deadline) as scope:
                await _loop(run, task_message)
        else:
            await _loop(run, task_message)
        if run.blocked:
            waiting = ", ".join(repr(q.id) for q in run.questions)
            status, reason = "waiting", f"waiting for answers to {waiting}"
    except _Stop as stop:
        status, reason = "stopped", stop.reason
    except TimeoutError as exc:
        if scope is None or not scope.expired():  # not the run's deadline: a node's own
            raise _failed(run, _node_error(run, exc)) from exc
        status, reason = "stopped", f"{until!r}: the run's time limit of {deadline} s was reached"
    except AccordError as exc:
        _failed(run, exc)
        raise
    except asyncio.CancelledError:
        _finished(run, "cancelled", "cancelled")
        raise
    except Exception as exc:
        raise _failed(run, _node_error(run, exc)) from exc
    result = run.result(status, reason)
    _finished(run, status, reason, result)
    return result


def _task_message(run: _Run, plan: CompiledGraph) -> Message:
    message = construct(
        Message,
        id=f"{run.run_id}/{run.prefix}task",
        run_id=run.run_id,
        sender="task",
        recipients=plan.entries,
        text=run.task,
        payload=None,
        usage=ZERO_USAGE,
        parents=(),
        round=0,
        created_at=run.started_at,
        metadata={},
    )
    run.depth[message.id] = 0
    return message


def _node_error(run: _Run, exc: BaseException) -> NodeError:
    """A ``NodeError`` for an exception that escaped the loop without naming its node."""
    return NodeError(
        f"run {run.run_id!r} of graph {run.plan.name!r} failed: {type(exc).__name__}: {exc}",
        node="",
    )


def _failed(run: _Run, exc: AccordError) -> AccordError:
    """Attach the partial result to ``exc`` and report the run as failed."""
    result = run.result("failed", str(exc))
    exc.result = result
    _finished(run, "failed", str(exc), result)
    return exc


def _finished(run: _Run, status: str, reason: str | None, result: RunResult | None = None) -> None:
    duration = time.perf_counter() - run.t0
    if run.sink is not None:
        run.sink(
            construct(
                ev.RunFinished,
                run_id=run.run_id,
                at=time.time(),
                kind="run_finished",
                status=status,
                stop_reason=reason,
                usage=result.usage if result is not None else run.total_usage(),
                duration_s=duration,
                output=result.output if result is not None else None,
            )
        )
    if run.debug:
        log.debug("run_finished", run_id=run.run_id, status=status, duration_s=duration)


async def run_inner(ctx: ActivationContext, plan: CompiledGraph, task: str) -> RunResult:
    """Run a subgraph's ``plan`` on ``task`` inside the run of activation ``ctx``.

    Its activations count against the run's step limit and budgets, are cancelled with it, go to
    its events and recorder (named ``outer/inner``; ``outer[r]/inner`` for the outer node's round
    ``r`` > 0) and are taken from its cache on resume. Errors propagate to the parent run.
    """
    parent = ctx._run
    prefix = f"{ctx.node}/" if ctx.round == 0 else f"{ctx.node}[{ctx.round}]/"
    inner = _Run(
        plan,
        task,
        parent.run_id,
        parent.default_backend,
        parent.until,
        parent.root.max_steps,
        parent.sink,
        parent.wants_tokens,
        parent.cache,
        parent.recorder,
        parent=parent,
        prefix=prefix,
    )
    await _loop(inner, _task_message(inner, plan))
    if inner.blocked:  # the subgraph node waits for the answers its nodes wait for
        raise Blocked(ctx.node)
    return inner.result("completed", None)


async def _loop(run: _Run, task_message: Message) -> None:
    pending: list[tuple[str, tuple[Message, ...]]] = [
        (name, (task_message,)) for name in run.plan.entries
    ]
    done: asyncio.Queue[tuple[ActivationContext, Message | None, bool, BaseException | None]] | None
    done = None  # created when the first activation runs as a task (a chain never needs it)
    running: set[asyncio.Task[None]] = set()

    async def child(ctx: ActivationContext) -> None:
        assert done is not None
        try:
            message, cached = await run.perform(ctx)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # reported to the loop, which re-raises it
            done.put_nowait((ctx, None, False, exc))
        else:
            done.put_nowait((ctx, message, cached, None))

    outstanding = 0  # children launched whose result the loop has not taken yet
    try:
        while True:
            if len(pending) == 1 and not outstanding:
                name, inputs = pending.pop()
                ctx = run.begin(name, inputs)
                try:
                    message, cached = await run.perform(ctx)
                except Blocked:
                    run.blocked += 1  # nothing else runs: the run ends waiting
                    continue
                pending = run.finish(ctx, message, cached)
                continue
            if pending and done is None:
                done = asyncio.Queue()
            for name, inputs in pending:
                ctx = run.begin(name, inputs)
                task = asyncio.create_task(child(ctx), name=ctx.activation_id)
                running.add(task)
                task.add_done_callback(running.discard)
                outstanding += 1
            pending = []
            if not outstanding:
                return
            assert done is not None
            ctx, result, cached, error = await done.get()
            outstanding -= 1
            if isinstance(error, Blocked):
                run.blocked += 1  # the other branches go on until they block too
                continue
            if error is not None:
                raise error
            assert result is not None
            pending = run.finish(ctx, result, cached)
    finally:
        if running:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
