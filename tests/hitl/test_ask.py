"""Asking a person: a run pauses as "waiting", keeps its other branches going, and resumes with
validated answers (``Human`` nodes and ``ctx.ask`` in a step)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import _graphs
import pytest
from _graphs import approval_graph, two_asks_graph, with_side_branch

import accord
from accord.graphs._graph import Subgraph
from accord.runtime import ActivationContext, AnswerError, InputReceived, InputRequested
from accord.runtime._input import HANDLER, terminal_asker
from accord.store import give_answers, open_store


async def test_ask_without_a_store_raises_a_usage_error_naming_the_store() -> None:
    with pytest.raises(accord.UsageError, match="needs one") as info:
        await approval_graph().run("x", durability="off")
    assert "store=" in str(info.value)


async def test_human_run_pauses_waiting_with_typed_questions_recorded(db: Path) -> None:
    events: list[Any] = []
    result = await approval_graph().run("x", store=db, on_event=events.append)
    assert result.status == "waiting"
    [q] = result.questions
    assert (q.id, q.node, q.round) == ("review/0/q0", "review", 0)
    assert q.question == "Approve plan for x?"
    assert q.answer_schema["properties"]["approved"]["type"] == "boolean"
    assert [m.sender for m in result.transcript] == ["draft"]
    assert [e.question_id for e in events if isinstance(e, InputRequested)] == [q.id]
    with open_store(db) as store:
        assert store.get_run(result.run_id).status == "waiting"
        [record] = store.questions(result.run_id)
        assert record.pending and record.question.id == q.id


async def test_resume_with_an_answer_finishes_the_run_without_rerunning_finished_steps(
    db: Path,
) -> None:
    graph = approval_graph()
    paused = await graph.run("x", store=db)
    events: list[Any] = []
    result = await graph.resume(
        paused.run_id,
        store=db,
        answers={"review/0/q0": {"approved": True}},
        on_event=events.append,
    )
    assert result.status == "completed" and result.text == "done"
    assert result.questions == []
    assert _graphs.DONE == ["draft", "act"]  # draft came from the store the second time
    assert [e.question_id for e in events if isinstance(e, InputReceived)] == ["review/0/q0"]
    assert not [e for e in events if isinstance(e, InputRequested)]


async def test_wrong_answer_is_refused_and_the_run_stays_waiting(db: Path) -> None:
    graph = approval_graph()
    paused = await graph.run("x", store=db)
    for wrong in ({"approved": "perhaps"}, "yes", {"reason": "no field approved"}):
        with pytest.raises(AnswerError, match="stays waiting"):
            await graph.resume(paused.run_id, store=db, answers={"review/0/q0": wrong})
    with pytest.raises(AnswerError, match="review/0/q0"):
        await graph.resume(paused.run_id, store=db, answers={"nope/0/q0": True})
    with open_store(db) as store:
        assert store.get_run(paused.run_id).status == "waiting"
        assert store.get_run(paused.run_id).attempts == 1  # never started again
        assert all(r.pending for r in store.questions(paused.run_id))
    result = await graph.resume(
        paused.run_id, store=db, answers={"review/0/q0": {"approved": False, "reason": "risky"}}
    )
    assert result.text == "refused: risky"


async def test_two_questions_in_parallel_branches_are_pending_together(db: Path) -> None:
    g = accord.Graph("two")
    g.add(
        accord.Human("left", question="Left? {{ task }}", output=int),
        accord.Human("right", question="Right?", output=bool),
    )
    g.set_entry("left", "right")
    g.set_exit("left", "right")
    paused = await g.run("t", store=db)
    assert paused.status == "waiting"
    assert sorted(q.id for q in paused.questions) == ["left/0/q0", "right/0/q0"]
    still = await g.resume(paused.run_id, store=db, answers={"left/0/q0": 7})
    assert still.status == "waiting"
    assert [q.id for q in still.questions] == ["right/0/q0"]
    assert still.outputs["left"].text == "7"
    done = await g.resume(paused.run_id, store=db, answers={"right/0/q0": True})
    assert done.status == "completed"
    assert {k: m.text for k, m in done.outputs.items()} == {"left": "7", "right": "True"}


async def test_a_branch_that_does_not_need_the_answer_runs_to_its_end(db: Path) -> None:
    graph = with_side_branch(approval_graph())
    paused = await graph.run("x", store=db)
    assert paused.status == "waiting"
    assert {"side0", "side1", "side2"} <= set(_graphs.DONE)
    assert paused.outputs["side2"].text == "side 2"
    _graphs.DONE.clear()
    done = await graph.resume(paused.run_id, store=db, answers={"review/0/q0": {"approved": True}})
    assert done.status == "completed" and done.outputs["act"].text == "done"
    assert _graphs.DONE == ["act"]  # nothing that finished ran again


async def test_two_asks_in_one_step_get_their_own_ids_and_answers(db: Path) -> None:
    graph = two_asks_graph()
    first = await graph.run("t", store=db)
    assert [q.id for q in first.questions] == ["asks_twice/0/q0"]
    second = await graph.resume(first.run_id, store=db, answers={"asks_twice/0/q0": "Ada"})
    [q] = second.questions
    assert (q.id, q.question) == ("asks_twice/0/q1", "Ada, your age?")
    assert q.answer_schema == {"type": "integer"}
    with pytest.raises(AnswerError):
        await graph.resume(first.run_id, store=db, answers={"asks_twice/0/q1": "old"})
    done = await graph.resume(first.run_id, store=db, answers={"asks_twice/0/q1": 36})
    assert done.text == "Ada is 36"


async def test_human_timeout_with_a_default_answer_finishes_the_run(db: Path) -> None:
    graph = approval_graph(
        timeout=0.05, on_timeout=accord.Approval(approved=False, reason="no answer in time")
    )
    result = await graph.run("x", store=db)
    assert result.status == "completed"
    assert result.text == "refused: no answer in time"
    with open_store(db) as store:
        [record] = store.questions(result.run_id)
        assert record.answer == {"approved": False, "reason": "no answer in time"}


async def test_human_timeout_with_stop_stops_the_run(db: Path) -> None:
    result = await approval_graph(timeout=0.05, on_timeout="stop").run("x", store=db)
    assert result.status == "stopped"
    assert "review/0/q0" in (result.stop_reason or "") and "0.05" in (result.stop_reason or "")
    assert _graphs.DONE == ["draft"]


async def test_human_with_a_timeout_takes_an_answer_given_while_it_waits(db: Path) -> None:
    graph = approval_graph(timeout=10, on_timeout="stop")
    store = open_store(db)

    async def answer_soon() -> None:
        while True:
            await asyncio.sleep(0.05)
            runs = store.list_runs({"status": "running"})
            if runs and store.questions(runs[0].run_id):
                give_answers(store, runs[0].run_id, {"review/0/q0": {"approved": True}})
                return

    helper = asyncio.create_task(answer_soon())
    result = await graph.run("x", store=store)
    await helper
    store.close()
    assert result.status == "completed" and result.text == "done"


def test_human_refuses_an_on_timeout_that_is_not_an_answer() -> None:
    with pytest.raises(accord.ConfigError, match="on_timeout"):
        approval_graph(timeout=1, on_timeout={"approved": "maybe"})
    with pytest.raises(accord.ConfigError, match="timeout"):
        approval_graph(timeout=0)


async def test_terminal_prompt_asks_again_until_the_answer_fits(db: Path) -> None:
    typed = iter(['{"approved": "y"}', '{"approved": true, "reason": "ok"}'])
    shown: list[str] = []
    token = HANDLER.set(terminal_asker(read=lambda prompt: next(typed), write=shown.append))
    try:
        result = await approval_graph().run("x", store=db)
    finally:
        HANDLER.reset(token)
    assert result.status == "completed" and result.text == "done"
    assert any("Approve plan for x?" in line for line in shown)
    assert any("refused" in line for line in shown)


async def test_terminal_prompt_at_end_of_input_pauses_the_run(db: Path) -> None:
    def eof(prompt: str) -> str:
        raise EOFError

    token = HANDLER.set(terminal_asker(read=eof, write=lambda text: None))
    try:
        result = await approval_graph().run("x", store=db)
    finally:
        HANDLER.reset(token)
    assert result.status == "waiting"


async def test_a_question_inside_a_subgraph_pauses_and_resumes_the_outer_run(db: Path) -> None:
    outer = accord.Graph("outer")
    outer.add(Subgraph(approval_graph(), name="inner"))
    outer.set_entry("inner")
    outer.set_exit("inner")
    paused = await outer.run("x", store=db)
    assert paused.status == "waiting"
    [q] = paused.questions
    assert q.id == "inner/review/0/q0"
    done = await outer.resume(paused.run_id, store=db, answers={q.id: {"approved": True}})
    assert done.status == "completed"


async def test_ask_with_a_key_names_the_question_and_passes_through_except_exception(
    db: Path,
) -> None:
    @accord.step
    async def tool_loop(ctx: ActivationContext) -> str:
        try:  # a tool loop that turns tool errors into results must not swallow the pause
            ok = await ctx.ask("Run rm(a.txt)?", output=accord.Approval, key="approve-rm-a")
        except Exception as exc:  # pragma: no cover - the test fails if this runs
            return f"swallowed {exc!r}"
        return "ran" if ok.approved else "skipped"

    g = accord.Graph("keyed")
    g.add(tool_loop)
    g.set_entry("tool_loop")
    g.set_exit("tool_loop")
    paused = await g.run("t", store=db)
    assert paused.status == "waiting"
    assert [q.id for q in paused.questions] == ["tool_loop/0/approve-rm-a"]
    done = await g.resume(
        paused.run_id, store=db, answers={"tool_loop/0/approve-rm-a": {"approved": True}}
    )
    assert done.text == "ran"
