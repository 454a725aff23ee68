"""The spans themselves: built from run events (run, activations) and a backend wrapper (calls).

Span tree of one run::

    accord.run {graph}                 accord.run_id, accord.graph, accord.status, usage
    ├── invoke_agent {node}            gen_ai.operation.name=invoke_agent, gen_ai.agent.name,
    │   │                              accord.node, accord.round, usage
    │   └── chat {model}               gen_ai.operation.name=chat, gen_ai.request.model,
    │                                  gen_ai.usage.input_tokens/output_tokens, finish reasons
    └── ...

The run span's parent is the span current where ``graph.run`` was called (a served request's
remote context, an application's own span), or the activation span of the enclosing run for a
subgraph. A model-call span is current while the backend works, so HTTP client spans nest in it.

Caveat: a failed run's exception is recorded from the ``run_finished`` event, which the runtime
emits while handling the error; an activation that fails with a ``UsageError`` (not a
``RunError``) ends the run without that event, and its spans are ended by :meth:`Tracer.abandon`
when someone calls it (the server does), else never exported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import traceback
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

__all__ = ["Tracer"]

_PROVIDERS = {"openai": "openai", "hf": "huggingface"}
_auto_lock = threading.Lock()


def _ns(at: float) -> int:
    return int(at * 1e9)


def _split(name: str) -> tuple[str, str]:
    prefix, sep, model = name.partition(":")
    if not sep:
        return "accord", name
    return _PROVIDERS.get(prefix, prefix), model


def _usage_attrs(usage: Any, attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` with the usage attributes added (set on a span in one call)."""
    attrs["gen_ai.usage.input_tokens"] = usage.prompt_tokens
    attrs["gen_ai.usage.output_tokens"] = usage.completion_tokens
    attrs["accord.usage.requests"] = usage.requests
    if usage.cost:
        attrs["accord.usage.cost"] = usage.cost
    return attrs


def _error(span: Span, exc: BaseException) -> None:
    from accord.store import redact

    span.set_attribute("error.type", type(exc).__qualname__)
    # As Span.record_exception, with the message and stack trace redacted.
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    span.add_event(
        "exception",
        {
            "exception.type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "exception.message": redact(str(exc)),
            "exception.stacktrace": redact(stack),
        },
    )
    span.set_status(Status(StatusCode.ERROR, redact(f"{type(exc).__name__}: {exc}")[:500]))


@dataclass(slots=True)
class _RunSpans:
    span: Span
    activations: dict[str, tuple[str, Span]] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    """Activation ids whose model call raised."""


class Tracer:
    """Turns runs into spans (see module docstring); made by :func:`accord.instrument`."""

    def __init__(self, provider: Any, *, capture_content: bool, export: bool) -> None:
        self._provider = provider
        self._tracer: Any = None
        self.capture_content = capture_content
        self._export = export
        self._runs: dict[str, _RunSpans] = {}
        self._acts: dict[str, Span] = {}

    def _get(self) -> Any:
        if self._tracer is None:
            provider = self._provider
            if provider is None:
                provider = trace.get_tracer_provider()
                if self._export and type(provider).__name__ in (
                    "ProxyTracerProvider",
                    "NoOpTracerProvider",
                ):
                    provider = _auto_provider()
            self._tracer = provider.get_tracer("accord")
        return self._tracer

    # ------------------------------------------------------------------ runs

    def run_sink(self, run_id: str, graph: str, task: str, sink: Any) -> Any:
        """Start the run's span; returns the event sink that continues the tree (and calls
        ``sink``)."""
        from accord.runtime import current_context

        outer = current_context()
        parent = None
        if outer is not None:
            found = self._acts.get(outer.activation_id)
            if found is not None:
                parent = trace.set_span_in_context(found)
        span = self._get().start_span(
            f"accord.run {graph}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes={
                "gen_ai.operation.name": "invoke_workflow",
                "accord.run_id": run_id,
                "accord.graph": graph,
            },
        )
        if self.capture_content:
            span.set_attribute("accord.task", task)
        state = self._runs[run_id] = _RunSpans(span)

        def on_event(event: Any) -> None:
            try:
                self._event(state, event)
            finally:
                if sink is not None:
                    sink(event)

        return on_event

    def _event(self, state: _RunSpans, event: Any) -> None:
        kind = event.kind
        if kind == "activation_started":
            # A subgraph's node nests under the activation of the subgraph node that runs it.
            outer = state.activations.get(_outer_activation(event.run_id, event.node) or "")
            parent = outer[1] if outer is not None else state.span
            span = self._get().start_span(
                f"invoke_agent {event.node}",
                context=trace.set_span_in_context(parent),
                kind=SpanKind.INTERNAL,
                start_time=_ns(event.at),
                attributes={
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": event.node,
                    "accord.run_id": event.run_id,
                    "accord.node": event.node,
                    "accord.round": event.round,
                    "accord.activation_id": event.activation_id,
                },
            )
            state.activations[event.activation_id] = (event.node, span)
            self._acts[event.activation_id] = span
        elif kind == "activation_finished":
            found = state.activations.pop(event.activation_id, None)
            self._acts.pop(event.activation_id, None)
            if found is not None:
                span = found[1]
                span.set_attributes(_usage_attrs(event.usage, {"accord.cached": event.cached}))
                span.end(end_time=_ns(event.at))
        elif kind == "retry":
            for node, span in state.activations.values():
                if node == event.node:
                    span.add_event(
                        "accord.retry",
                        {
                            "accord.attempt": event.attempt,
                            "accord.delay_s": event.delay_s,
                            "error.type": event.error[:200],
                        },
                    )
        elif kind == "run_finished":
            exc = sys.exc_info()[1] if event.status == "failed" else None
            self._finish(
                state, event.run_id, event.status, event.stop_reason, exc, event.usage, event.at
            )

    def _finish(
        self,
        state: _RunSpans,
        run_id: str,
        status: str,
        reason: str | None,
        exc: BaseException | None,
        usage: Any,
        at: float | None,
    ) -> None:
        if self._runs.get(run_id) is state:
            del self._runs[run_id]
        end = _ns(at) if at is not None else None
        blamed = getattr(exc, "node", None)
        for aid, (node, span) in list(state.activations.items()):
            self._acts.pop(aid, None)
            if exc is not None and (
                aid in state.failed or node == blamed or len(state.activations) == 1
            ):
                _error(span, exc)
            else:
                span.set_attribute("accord.cancelled", True)
            span.end(end_time=end)
        state.activations.clear()
        span = state.span
        attrs: dict[str, Any] = {"accord.status": status}
        if reason and status != "failed":
            attrs["accord.stop_reason"] = reason
        span.set_attributes(_usage_attrs(usage, attrs) if usage is not None else attrs)
        if exc is not None:
            _error(span, exc)
        elif status == "failed":
            span.set_status(Status(StatusCode.ERROR, "run failed"))
        span.end(end_time=end)

    def abandon(self, run_id: str, exc: BaseException) -> None:
        """End the spans of a run that ended with ``exc`` and no ``run_finished`` event."""
        state = self._runs.get(run_id)
        if state is not None:
            self._finish(state, run_id, "failed", None, exc, None, None)

    # ------------------------------------------------------------------ model calls

    def backend(self, inner: Any, ctx: Any) -> Any:
        """``inner`` wrapped so that its calls become ``chat`` spans under ``ctx``'s span."""
        return _TracedBackend(inner, self, ctx)

    @contextlib.contextmanager
    def call_span(
        self, backend: Any, request: Any, ctx: Any, *, current: bool = True
    ) -> Iterator[Span]:
        parent_span = self._acts.get(ctx.activation_id)
        parent = trace.set_span_in_context(parent_span) if parent_span is not None else None
        provider, model = _split(backend.name)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.system": provider,
            "gen_ai.request.model": model,
            "accord.run_id": ctx.run_id,
            "accord.node": ctx.node,
            "accord.round": ctx.round,
        }
        for key, value in (
            ("gen_ai.request.temperature", request.temperature),
            ("gen_ai.request.top_p", request.top_p),
            ("gen_ai.request.max_tokens", request.max_tokens),
            ("gen_ai.request.seed", request.seed),
            ("gen_ai.request.choice.count", request.n if request.n != 1 else None),
        ):
            if value is not None:
                attrs[key] = value
        if request.stop:
            attrs["gen_ai.request.stop_sequences"] = list(request.stop)
        if request.response_schema is not None:
            attrs["gen_ai.output.type"] = "json"
        if self.capture_content:
            attrs["gen_ai.input.messages"] = json.dumps(
                [
                    {"role": m.role, "parts": [{"type": "text", "content": m.content}]}
                    for m in request.messages
                ]
            )
        span = self._get().start_span(
            f"chat {model}", context=parent, kind=SpanKind.CLIENT, attributes=attrs
        )
        # A stream's span is not made current: its generator yields to the caller in between.
        token = otel_context.attach(trace.set_span_in_context(span)) if current else None
        try:
            yield span
        except asyncio.CancelledError:
            span.set_attribute("accord.cancelled", True)
            raise
        except BaseException as exc:
            run = self._runs.get(ctx.run_id)
            if run is not None:
                run.failed.add(ctx.activation_id)
            _error(span, exc)
            raise
        finally:
            if token is not None:
                otel_context.detach(token)
            span.end()

    def call_done(self, span: Span, completion: Any) -> None:
        attrs = _usage_attrs(completion.usage, {})
        if completion.model:
            attrs["gen_ai.response.model"] = completion.model
        reasons = [c.finish_reason for c in completion.choices if c.finish_reason]
        if reasons:
            attrs["gen_ai.response.finish_reasons"] = reasons
        span.set_attributes(attrs)
        if self.capture_content:
            span.set_attribute(
                "gen_ai.output.messages",
                json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": c.text}],
                            "finish_reason": c.finish_reason,
                        }
                        for c in completion.choices
                    ]
                ),
            )

    # ------------------------------------------------------------------ served requests

    @contextlib.contextmanager
    def remote_context(self, headers: Mapping[str, str]) -> Iterator[None]:
        """Make the trace context of an incoming request (``traceparent``) current."""
        token = otel_context.attach(extract(headers))
        try:
            yield
        finally:
            otel_context.detach(token)


class _TracedBackend:
    """A backend whose calls are spans; everything else is the wrapped backend's."""

    def __init__(self, inner: Any, tracer: Tracer, ctx: Any) -> None:
        self._inner = inner
        self._tracer = tracer
        self._ctx = ctx
        self.name = inner.name
        self.capabilities = inner.capabilities

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def complete(self, request: Any) -> Any:
        with self._tracer.call_span(self._inner, request, self._ctx) as span:
            completion = await self._inner.complete(request)
            self._tracer.call_done(span, completion)
            return completion

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        from accord.backends.base import Choice, Completion
        from accord.messages import Usage

        with self._tracer.call_span(self._inner, request, self._ctx, current=False) as span:
            parts: list[str] = []
            usage: Any = None
            finish: str | None = None
            async with contextlib.aclosing(self._inner.stream(request)) as deltas:
                async for delta in deltas:
                    parts.append(delta.text)
                    if delta.finish_reason is not None:
                        finish = delta.finish_reason
                    if delta.usage is not None:
                        usage = delta.usage
                    yield delta
            done = Completion(
                choices=(Choice(text="".join(parts), finish_reason=finish),),
                usage=usage or Usage(requests=1),
                model="",
            )
            self._tracer.call_done(span, done)


def _auto_provider() -> Any:
    """An SDK provider exporting over OTLP/HTTP, installed as the global one (once)."""
    with _auto_lock:
        current = trace.get_tracer_provider()
        if type(current).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider"):
            return current
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "accord"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        return provider


def _outer_activation(run_id: str, node: str) -> str | None:
    """The activation id of the subgraph node running ``node`` ("sub/a", or "sub[2]/a" when
    "sub" is in its round 2), or None for a node of the run's own graph."""
    if "/" not in node:
        return None
    head, sep, last = node.rsplit("/", 1)[0].rpartition("/")
    name, bracket, rnd = last.partition("[")
    return f"{run_id}/{head}{sep}{name}/{rnd.rstrip(']') if bracket else 0}"
