"""Tool calls in the run store: recorded with the activation, replayed without running tools."""

from __future__ import annotations

from pathlib import Path

import pytest

import accord
from accord.runtime.events import Event
from accord.store._run import open_store
from accord.testing import ReplayBackend, ScriptedBackend, tool_call
from accord.tools import Tool

pytestmark = pytest.mark.usefixtures("no_real_backends")

RAN: list[str] = []


def write_note(text: str) -> str:
    """Store a note (a side effect).

    Args:
        text: the note.
    """
    RAN.append(text)
    return f"saved {text!r}"


def _graph() -> accord.Graph:
    agent = accord.Agent("scribe", tools=[Tool(write_note, side_effects=True)])
    return accord.Graph("notes").add(agent)


def _script() -> ScriptedBackend:
    return ScriptedBackend(
        {"scribe": [[tool_call("write_note", text="a"), tool_call("write_note", text="b")], "ok"]}
    )


async def test_tool_calls_and_results_are_recorded_with_the_activation(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    RAN.clear()
    result = await _graph().run("note", _script(), store=db, durability="sync")

    store = open_store(db)
    (activation,) = store.activations(result.run_id, calls=True)
    first, second = activation.calls
    assert [c.name for c in first[1].tool_calls] == ["write_note", "write_note"]
    tool_turns = [(m.tool_call_id, m.content) for m in second[0].messages if m.role == "tool"]
    asked = next(m for m in second[0].messages if m.role == "assistant")
    ids = [c.id for c in asked.tool_calls]
    assert tool_turns == [(ids[0], "saved 'a'"), (ids[1], "saved 'b'")]
    kinds = [e["kind"] for e in store.events(result.run_id)]
    assert kinds.count("tool_call") == 2 and kinds.count("tool_result") == 2


async def test_replay_runs_no_tool_and_reproduces_the_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    RAN.clear()
    recorded = await _graph().run("note", _script(), store=db, durability="sync")
    assert RAN == ["a", "b"]

    replay = ReplayBackend(recorded.run_id, store=db, strict=True)
    seen: list[Event] = []
    again = await _graph().run("note", replay, durability="off", on_event=seen.append)

    assert RAN == ["a", "b"]  # not run again
    assert again.output is not None and again.output.text == "ok"
    cached = [e.cached for e in seen if e.kind == "tool_result"]
    assert cached == [True, True]


async def test_resume_of_a_finished_tool_activation_runs_no_tool(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    RAN.clear()
    recorded = await _graph().run("note", _script(), store=db, durability="sync")

    resumed = await _graph().resume(recorded.run_id, ScriptedBackend({}), store=db)

    assert RAN == ["a", "b"]
    assert resumed.output is not None and resumed.output.text == "ok"


async def test_trace_shows_tool_calls_in_the_activation_lane(tmp_path: Path) -> None:
    from accord.store._trace import _data, trace_html

    db = tmp_path / "runs.db"
    RAN.clear()
    recorded = await _graph().run("note", _script(), store=db, durability="sync")

    data = _data(open_store(db), recorded.run_id)

    assert [(t["node"], t["tool"], t["error"]) for t in data["tools"]] == [
        ("scribe", "write_note", None),
        ("scribe", "write_note", None),
    ]
    assert "toolmark" in trace_html(open_store(db), recorded.run_id)
