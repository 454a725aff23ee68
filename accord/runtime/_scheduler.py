"""The async scheduler: a loop that owns run state and a runner that owns concurrency.

Each ready activation runs as its own task as soon as its join policy is met, so independent
branches run concurrently and no branch waits for an unrelated one (there is no global barrier).
When exactly one activation is ready and nothing else runs, it is awaited inline (no task), which
keeps a chain's per-step cost low. Nothing started here outlives :func:`execute`: on an error, a
stop or a cancellation every in-flight activation is cancelled and awaited.

Caveat: errors fail fast: the first failing activation cancels the others and its error is raised
with the partial :class:`RunResult` attached as ``err.result``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from accord import _otel
from accord._fast import construct
from accord._log import get_logger
from accord.backends.base import Backend, Request
from accord.errors import MessageTypeError, NodeTimeoutError, RunError, StepLimitError
from accord.messages import ZERO_USAGE, Message, Usage
from accord.runtime import events as ev
from accord.runtime._node import ActivationContext, NodeOutput, _current
from accord.runtime._plan import Plan, RunState, deliver, new_state, take_ready
from accord.runtime.result import ActivationTiming, RunResult, RunStatus
from accord.runtime.termination import Condition, RunSnapshot

__all__ = ["execute", "ActivationCache", "ActivationRecorder", "EventSink"]

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


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def activation_id(run_id: str, node: str, round: int) -> str:
    """The id of activation (run, node, round); also the id of the message it produces."""
    return f"{run_id}/{node}/{round}"


class _Run:
    """State of one run, owned by the loop. Activations reach it through their context."""

    def __init__(
        self,
        plan: Plan,
        task: str,
        run_id: str,
        default_backend: Backend | None,
        until: Condition | None,
        max_steps: int,
        sink: EventSink | None,
        wants_tokens: bool,
        cache: ActivationCache | None,
        recorder: ActivationRecorder | None = None,
    ) -> None:
        self.plan = plan
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
        self.snapshot = RunSnapshot()
        self.usages: list[tuple[str, Usage]] = []
        """Every model call's usage, by node, in the order they finished (summed at the end)."""
        self.reserved_requests = 0
        self.reserved_tokens = 0
        """Calls in flight and their estimated prompt tokens: budgets count them as spent."""
        self.history: dict[str, list[tuple[tuple[Message, ...], Message]]] = {
            n: [] for n in plan.order
        }
        self.messages: list[Message] = []
        self.depth: dict[str, int] = {}
        self.timings: list[tuple[str, int, float, float, bool]] = []
        self.started_at = time.time()
        self.t0 = time.perf_counter()
        self.steps_started = 0
        self.debug = log.debug_enabled()
        self.memo: dict[Any, Any] = {}
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
        if self.until is not None:
            self.reserved_requests -= 1
            self.reserved_tokens -= reservation

    def add_usage(self, node: str, usage: Usage) -> None:
        self.usages.append((node, usage))
        if self.until is not None:
            self.snapshot.usage = self.snapshot.usage + usage

    def total_usage(self) -> Usage:
        if self.until is not None:
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
        if self.sink is not None:
            self.sink(
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

    # ---------------------------------------------------------------- activations

    def begin(self, node: str, inputs: tuple[Message, ...]) -> ActivationContext:
        if self.steps_started >= self.max_steps:
            raise StepLimitError(
                f"the run reached its step limit of {self.max_steps} activations and {node!r} was "
                "about to run again. A loop may not be converging: give its back edge a max_rounds "
                "or an exit condition, or raise graph.run(max_steps=...).",
                limit=self.max_steps,
                last_node=node,
            )
        self.steps_started += 1
        rnd = self.state.started[node]
        self.state.started[node] = rnd + 1
        aid = activation_id(self.run_id, node, rnd)
        ctx = ActivationContext(self, node, rnd, inputs, self.history[node], aid)
        if self.sink is not None:
            self.sink(
                construct(
                    ev.ActivationStarted,
                    run_id=self.run_id,
                    at=ctx.started_at,
                    kind="activation_started",
                    node=node,
                    round=rnd,
                    activation_id=aid,
                    inputs=tuple(m.id for m in inputs),
                )
            )
        return ctx

    async def perform(self, ctx: ActivationContext) -> tuple[Message, bool]:
        """Run one activation (or take it from the cache); returns its message and whether cached."""
        if self.cache is not None:
            cached = self.cache.get(ctx.activation_id)
            if cached is not None:
                return cached, True
        node = self.plan.nodes[ctx.node]
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
        finally:
            _current.reset(token)
        return self._message(ctx, out), False

    def _message(self, ctx: ActivationContext, out: NodeOutput) -> Message:
        node = self.plan.nodes[ctx.node]
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
            sender=ctx.node,
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
        self.history[ctx.node].append((ctx.inputs, message))
        if cached:
            self.add_usage(ctx.node, message.usage)
        now = time.time()
        duration = 0.0 if cached else now - ctx.started_at
        self.timings.append((ctx.node, ctx.round, ctx.started_at, duration, cached))
        if self.sink is not None:
            self.sink(
                construct(
                    ev.MessageEvent, run_id=self.run_id, at=now, kind="message", message=message
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
        )


async def execute(
    plan: Plan,
    task: str,
    *,
    run_id: str,
    default_backend: Backend | None = None,
    until: Condition | None = None,
    max_steps: int = 50,
    sink: EventSink | None = None,
    wants_tokens: bool = False,
    cache: ActivationCache | None = None,
    recorder: ActivationRecorder | None = None,
) -> RunResult:
    """Run ``plan`` on ``task`` to the end and return its result (see module docstring).

    ``recorder`` (the run store's) gets each finished activation that did not come from
    ``cache``, before its message is delivered.
    """
    if _otel.TRACER is not None:  # accord.instrument(): spans from the run's events
        sink = _otel.TRACER.run_sink(run_id, plan.name, task, sink)
    run = _Run(
        plan, task, run_id, default_backend, until, max_steps, sink, wants_tokens, cache, recorder
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
    task_message = construct(
        Message,
        id=f"{run_id}/task",
        run_id=run_id,
        sender="task",
        recipients=plan.entries,
        text=task,
        payload=None,
        usage=ZERO_USAGE,
        parents=(),
        round=0,
        created_at=run.started_at,
        metadata={},
    )
    run.depth[task_message.id] = 0
    status: RunStatus = "completed"
    reason: str | None = None
    deadline = until.deadline_s() if until is not None else None
    try:
        if deadline is not None:
            async with asyncio.timeout(deadline):
                await _loop(run, task_message)
        else:
            await _loop(run, task_message)
    except _Stop as stop:
        status, reason = "stopped", stop.reason
    except TimeoutError:
        status, reason = "stopped", f"{until!r}: the run's time limit of {deadline} s was reached"
    except RunError as exc:
        exc.result = run.result("failed", str(exc))
        _finished(run, "failed", str(exc))
        raise
    except asyncio.CancelledError:
        _finished(run, "cancelled", "cancelled")
        raise
    result = run.result(status, reason)
    _finished(run, status, reason, result)
    return result


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
            )
        )
    if run.debug:
        log.debug("run_finished", run_id=run.run_id, status=status, duration_s=duration)


async def _loop(run: _Run, task_message: Message) -> None:
    pending: list[tuple[str, tuple[Message, ...]]] = [
        (name, (task_message,)) for name in run.plan.entries
    ]
    done: asyncio.Queue[tuple[ActivationContext, Message | None, bool, BaseException | None]] = (
        asyncio.Queue()
    )
    running: set[asyncio.Task[None]] = set()

    async def child(ctx: ActivationContext) -> None:
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
                message, cached = await run.perform(ctx)
                pending = run.finish(ctx, message, cached)
                continue
            for name, inputs in pending:
                ctx = run.begin(name, inputs)
                task = asyncio.create_task(child(ctx), name=ctx.activation_id)
                running.add(task)
                task.add_done_callback(running.discard)
                outstanding += 1
            pending = []
            if not outstanding:
                return
            ctx, result, cached, error = await done.get()
            outstanding -= 1
            if error is not None:
                raise error
            assert result is not None
            pending = run.finish(ctx, result, cached)
    finally:
        if running:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
