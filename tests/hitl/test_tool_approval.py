"""A tool with ``approval=True``: the run pauses before the call, and the person's answer decides
whether it runs (a refusal goes back to the model as an error result with the reason)."""

from __future__ import annotations

from pathlib import Path

import pytest

import accord
from accord.testing import ScriptedBackend, tool_call

SENT: list[str] = []


def send_mail(to: str) -> str:
    """Send the report by mail.

    Args:
        to: the address.
    """
    SENT.append(to)
    return f"sent to {to}"


def _graph() -> accord.Graph:
    tool = accord.Tool(send_mail, approval=True, side_effects=True)
    return accord.Graph("mailer").add(accord.Agent("clerk", tools=[tool]))


def _backend() -> ScriptedBackend:
    # The model asks for the call, then answers with what the tool loop sent back.
    return ScriptedBackend({"clerk": [tool_call("send_mail", to="boss@example.com"), "done"]})


@pytest.fixture(autouse=True)
def _clear() -> None:
    SENT.clear()


async def _paused(db: Path) -> tuple[accord.Graph, accord.RunResult]:
    graph = _graph()
    paused = await graph.run("mail the report", _backend(), store=db)
    assert paused.status == "waiting"
    assert SENT == []  # nothing ran before the person answered
    [question] = paused.questions
    assert question.question == 'Approve the call send_mail({"to": "boss@example.com"})?'
    assert question.answer_schema["properties"]["approved"]["type"] == "boolean"
    return graph, paused


async def test_tool_approval_approved_runs_the_call_once(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    graph, paused = await _paused(db)
    [question] = paused.questions
    done = await graph.resume(
        paused.run_id, _backend(), store=db, answers={question.id: {"approved": True}}
    )
    assert done.status == "completed" and done.text == "done"
    assert SENT == ["boss@example.com"]


async def test_tool_approval_denied_sends_the_reason_to_the_model_and_runs_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    graph, paused = await _paused(db)
    [question] = paused.questions
    backend = _backend()
    done = await graph.resume(
        paused.run_id,
        backend,
        store=db,
        answers={question.id: {"approved": False, "reason": "not to the boss"}},
    )
    assert done.status == "completed"
    assert SENT == []
    last = backend.requests[-1]
    tool_turns = [m.content for m in last.messages if m.role == "tool"]
    assert tool_turns and "did not approve" in tool_turns[0] and "not to the boss" in tool_turns[0]


async def test_tool_approval_without_a_store_is_a_usage_error() -> None:
    with pytest.raises(accord.UsageError, match="store"):
        await _graph().run("mail the report", _backend(), durability="off")
    assert SENT == []
