"""OpenTelemetry switch: ``accord.instrument()`` (or ``ACCORD_OTEL=1``) turns tracing on.

With tracing on, every run is a span, each activation a child span (``invoke_agent``), and each
model call a span under its activation (``chat``), following OpenTelemetry's GenAI semantic
conventions. The runtime checks :data:`TRACER` once per run and once per model call; while it is
``None`` (the default) nothing else happens and OpenTelemetry is never imported.

Caveat: message contents (the task, prompts, replies) go into spans only when asked for:
``instrument(capture_content=True)``, ``ACCORD_OTEL_CAPTURE_CONTENT=1`` or OpenTelemetry's
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accord._otel_spans import Tracer

__all__ = ["TRACER", "instrument", "uninstrument"]

TRACER: Tracer | None = None
"""The active tracer (None: tracing off)."""

_TRUE = ("1", "true", "yes", "on")


def _env(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def instrument(
    tracer_provider: Any = None, *, capture_content: bool | None = None, export: bool = True
) -> None:
    """Turn OpenTelemetry tracing of runs, activations and model calls on.

    Args:
        tracer_provider: the ``TracerProvider`` to create spans with (default: the global one).
        capture_content: put the task, prompts and replies into spans (default: off, unless
            ``ACCORD_OTEL_CAPTURE_CONTENT`` or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
            says so).
        export: when no provider is given and the application set none, install one that
            exports over OTLP/HTTP (configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables).

    Raises:
        MissingDependencyError: the ``otel`` extra is not installed.

    Example::

        accord.instrument()          # spans go to the global TracerProvider
        result = await graph.run("task", backend)
    """
    global TRACER
    try:
        from accord._otel_spans import Tracer
    except ImportError as exc:
        from accord.errors import MissingDependencyError

        raise MissingDependencyError(
            "accord.instrument() needs OpenTelemetry: pip install 'accord[otel]'.",
            package="opentelemetry-sdk",
            extra="otel",
        ) from exc
    if capture_content is None:
        capture_content = _env("ACCORD_OTEL_CAPTURE_CONTENT") or _env(
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
        )
    TRACER = Tracer(tracer_provider, capture_content=capture_content, export=export)


def uninstrument() -> None:
    """Turn tracing off again (runs already going finish their spans)."""
    global TRACER
    TRACER = None


if _env("ACCORD_OTEL"):
    instrument()
