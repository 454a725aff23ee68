"""``accord runs list --waiting`` and ``accord runs answer``; ``accord run --no-input``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import typer
from _graphs import approval_graph
from typer.testing import CliRunner

import accord
from accord.store import open_store
from accord.store.cli import register

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    cli = typer.Typer()

    @cli.callback()
    def root() -> None:
        """accord (test host)."""

    register(cli)
    return cli


def _paused(db: Path, graph: accord.Graph | None = None) -> str:
    result = asyncio.run((graph or approval_graph()).run("x", store=db, durability="sync"))
    assert result.status == "waiting"
    return result.run_id


def _two_questions() -> accord.Graph:
    g = accord.Graph("two")
    g.add(accord.Human("left", question="Left?", output=int), accord.Human("right", question="R?"))
    g.set_entry("left", "right")
    g.set_exit("left", "right")
    return g


def test_runs_list_waiting_shows_only_waiting_runs_and_their_questions(
    app: typer.Typer, db: Path
) -> None:
    waiting = _paused(db)
    done = asyncio.run(
        approval_graph(timeout=0.01, on_timeout={"approved": True}).run("y", store=db)
    )
    out = runner.invoke(app, ["runs", "list", "--waiting", "--store", str(db)])
    assert out.exit_code == 0, out.output
    assert waiting in out.output and done.run_id not in out.output
    assert "review/0/q0" in out.output and "Approve plan for x?" in out.output
    shown = runner.invoke(app, ["runs", "show", waiting, "--store", str(db)])
    assert "waiting for review/0/q0" in shown.output


def test_runs_answer_records_the_only_pending_question_and_resume_finishes(
    app: typer.Typer, db: Path
) -> None:
    run_id = _paused(db)
    out = runner.invoke(app, ["runs", "answer", run_id, '{"approved": true}', "--store", str(db)])
    assert out.exit_code == 0, out.output
    assert "answered review/0/q0" in out.output and "accord runs resume" in out.output
    with open_store(db) as store:
        [record] = store.questions(run_id)
        assert record.answer == {"approved": True} and not record.pending
    result = asyncio.run(approval_graph().resume(run_id, store=db))
    assert result.status == "completed" and result.text == "done"


def test_runs_answer_refuses_a_wrong_answer_with_exit_2_and_the_run_waits(
    app: typer.Typer, db: Path
) -> None:
    run_id = _paused(db)
    out = runner.invoke(app, ["runs", "answer", run_id, "review/0/q0", "yes", "--store", str(db)])
    assert out.exit_code == 2
    assert "AnswerError" in out.output and "stays waiting" in out.output
    unknown = runner.invoke(app, ["runs", "answer", run_id, "x/0/q0", "1", "--store", str(db)])
    assert unknown.exit_code == 2 and "review/0/q0" in unknown.output
    with open_store(db) as store:
        assert store.get_run(run_id).status == "waiting"
        assert store.questions(run_id)[0].pending


def test_runs_answer_needs_a_question_id_when_several_are_pending(
    app: typer.Typer, db: Path, tmp_path: Path
) -> None:
    run_id = _paused(db, _two_questions())
    out = runner.invoke(app, ["runs", "answer", run_id, "3", "--store", str(db)])
    assert out.exit_code == 2 and "left/0/q0" in out.output and "right/0/q0" in out.output
    answer = tmp_path / "answer.json"
    answer.write_text("3")
    ok = runner.invoke(
        app, ["runs", "answer", run_id, "left/0/q0", "--json", str(answer), "--store", str(db)]
    )
    assert ok.exit_code == 0, ok.output
    assert "still waiting for: right/0/q0" in ok.output
    text = runner.invoke(
        app, ["runs", "answer", run_id, "right/0/q0", "42", "--store", str(db)]
    )  # a string question takes text that looks like JSON as text
    assert text.exit_code == 0, text.output
    with open_store(db) as store:
        assert {r.question.id: r.answer for r in store.questions(run_id)} == {
            "left/0/q0": 3,
            "right/0/q0": "42",
        }


def test_accord_run_no_input_pauses_and_prints_how_to_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accord.cli import app as main_app

    graph_file = Path(__file__).with_name("_graphs.py")
    monkeypatch.setenv("ACCORD_STORE", str(tmp_path / "runs.db"))
    out = runner.invoke(main_app, ["run", f"{graph_file}:graph", "x", "--no-input", "--json"])
    assert out.exit_code == 0, out.output
    text = out.stdout
    data, _ = json.JSONDecoder().raw_decode(text[text.index('{\n  "run_id"') :])
    assert data["status"] == "waiting"
    assert data["questions"][0]["id"] == "review/0/q0"
    plain = runner.invoke(main_app, ["run", f"{graph_file}:graph", "x", "--no-input"])
    assert "is waiting for a person's answer" in plain.output
    assert "accord runs answer" in plain.output
