"""Run events: the order graph.stream() yields them in, their JSON form, and retry reports."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

import accord
from accord.backends.base import Request
from accord.errors import ProviderUnavailableError
from accord.runtime import Event, report_retry
from accord.testing import FunctionBackend, ScriptedBackend

pytestmark = pytest.mark.usefixtures("no_real_backends", "store_mode")

EVENTS = TypeAdapter(list[Event])


def _chain() -> accord.Graph:
    return accord.Graph("chain").add(accord.Agent("a"), accord.Agent("b")).connect("a", "b")


def _summary(events: list[object]) -> list[tuple[str, str | None]]:
    out = []
    for e in events:
        kind = e.kind  # type: ignore[attr-defined]
        if kind == "token":
            out.append((kind, e.text))  # type: ignore[attr-defined]
        elif kind == "message":
            out.append((kind, e.message.sender))  # type: ignore[attr-defined]
        else:
            out.append((kind, getattr(e, "node", None)))
    return out


async def test_stream_yields_events_in_order_with_tokens() -> None:
    backend = ScriptedBackend({"a": ["hello world"], "b": ["bye"]})

    events = [e async for e in _chain().stream("t", backend=backend, run_id="r")]

    assert _summary(events) == [
        ("run_started", None),
        ("activation_started", "a"),
        ("token", "hello"),
        ("token", " world"),
        ("message", "a"),
        ("activation_finished", "a"),
        ("activation_started", "b"),
        ("token", "bye"),
        ("message", "b"),
        ("activation_finished", "b"),
        ("run_finished", None),
    ]
    assert events[0].graph == "chain" and events[0].task == "t"
    assert events[1].activation_id == "r/a/0" and events[1].inputs == ("r/task",)
    assert events[6].inputs == ("r/a/0",)
    assert events[-1].status == "completed"
    assert events[-1].usage.requests == 2
    assert {e.run_id for e in events} == {"r"}


async def test_stream_without_tokens_yields_no_token_events() -> None:
    backend = ScriptedBackend({"a": ["hello world"], "b": ["bye"]})

    events = [e async for e in _chain().stream("t", backend=backend, tokens=False)]

    assert "token" not in [e.kind for e in events]
    assert len(events) == 8


async def test_on_event_receives_the_same_events_as_a_stream_minus_tokens() -> None:
    events: list[object] = []

    await _chain().run(
        "t", backend=ScriptedBackend({"a": ["x y"], "b": ["z"]}), on_event=events.append
    )

    assert [e.kind for e in events] == [  # type: ignore[attr-defined]
        "run_started",
        "activation_started",
        "message",
        "activation_finished",
        "activation_started",
        "message",
        "activation_finished",
        "run_finished",
    ]


async def test_events_survive_a_json_round_trip() -> None:
    backend = ScriptedBackend({"a": ["hello world"], "b": ["bye"]})
    events = [e async for e in _chain().stream("t", backend=backend)]

    restored = EVENTS.validate_json(EVENTS.dump_json(events))

    assert restored == events


async def test_stream_of_a_failed_run_raises_after_its_last_event() -> None:
    backend = ScriptedBackend({"a": [ProviderUnavailableError("down", status_code=503)]})
    seen: list[object] = []

    with pytest.raises(ProviderUnavailableError):
        async for event in _chain().stream("t", backend=backend):
            seen.append(event)

    assert seen[-1].kind == "run_finished"  # type: ignore[attr-defined]
    assert seen[-1].status == "failed"  # type: ignore[attr-defined]
    assert seen[-1].stop_reason == "down"  # type: ignore[attr-defined]


async def test_report_retry_inside_a_call_emits_a_retry_event() -> None:
    def model(request: Request) -> str:
        report_retry(attempt=1, delay_s=0.5, error="429 Too Many Requests", status_code=429)
        return "ok"

    events: list[object] = []
    g = accord.Graph("g").add(accord.Agent("a"))

    await g.run("t", backend=FunctionBackend(model), on_event=events.append)

    retry = next(e for e in events if e.kind == "retry")  # type: ignore[attr-defined]
    assert (retry.node, retry.round, retry.attempt, retry.delay_s, retry.status_code) == (  # type: ignore[attr-defined]
        "a",
        0,
        1,
        0.5,
        429,
    )


def test_report_retry_outside_a_run_does_nothing() -> None:
    report_retry(attempt=1, delay_s=0.1, error="x")
