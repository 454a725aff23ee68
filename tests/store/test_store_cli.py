"""``accord runs``: list, show, resume, export and trace, with their exit codes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from _scenario import ACTIVATIONS, backend, build_graph, reply
from typer.testing import CliRunner

import accord
from accord.backends import _registry
from accord.backends.base import Request
from accord.errors import NodeTimeoutError
from accord.store import open_store
from accord.store.cli import register
from accord.testing import FunctionBackend

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    cli = typer.Typer()

    @cli.callback()
    def root() -> None:
        """accord (test host)."""

    register(cli)
    return cli


@pytest.fixture
def scenario_backend() -> Iterator[None]:
    """``--model scenario:any`` resolves to the scenario's scripted model."""
    _registry.register_backend("scenario", lambda model, **options: backend())
    yield
    _registry._factories.pop("scenario", None)


def _failed_run(db: Path, *, source: str | None = None) -> str:
    async def flaky(request: Request) -> str:
        if request.agent == "critic" and request.round == 1:
            raise NodeTimeoutError("slow", node="critic", round=1, timeout=1.0)
        return reply(request)

    graph = build_graph()
    if source is not None:
        graph.source = source  # type: ignore[attr-defined]
    try:
        asyncio.run(graph.run("task", FunctionBackend(flaky), store=db, durability="sync"))
    except NodeTimeoutError as exc:
        return str(exc.result.run_id)
    raise AssertionError("the run did not fail")


def _graph_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_graph.py"
    path.write_text("from _scenario import build_graph\n\ngraph = build_graph()\n")
    return path


def test_runs_list_shows_each_run_with_its_status(app: typer.Typer, db: Path) -> None:
    done = asyncio.run(build_graph().run("task", backend(), store=db, durability="sync"))
    failed = _failed_run(db)
    out = runner.invoke(app, ["runs", "list", "--store", str(db)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert done.run_id in out.output and failed in out.output
    assert "completed" in out.output and "failed" in out.output
    only = runner.invoke(
        app, ["runs", "list", "--store", str(db), "--status", "failed"], env={"COLUMNS": "200"}
    )
    assert failed in only.output and done.run_id not in only.output


def test_runs_show_prints_the_transcript_and_usage(app: typer.Typer, db: Path) -> None:
    result = asyncio.run(build_graph().run("task", backend(), store=db, durability="async"))
    out = runner.invoke(
        app, ["runs", "show", result.run_id, "--store", str(db)], env={"COLUMNS": "200"}
    )
    assert out.exit_code == 0, out.output
    for m in result.transcript:
        assert m.text.splitlines()[0][:40] in out.output
    assert "completion tokens" in out.output
    assert f"{result.usage.prompt_tokens}" in out.output


@pytest.mark.parametrize("command", ["show", "export", "trace", "resume"])
def test_runs_commands_exit_2_for_an_unknown_run(
    app: typer.Typer, db: Path, tmp_path: Path, command: str
) -> None:
    open_store(db)
    extra = {
        "export": ["--json"],
        "trace": ["--html", str(tmp_path / "t.html")],
        "resume": ["--graph", f"{_graph_file(tmp_path)}:graph"],
    }.get(command, [])
    out = runner.invoke(app, ["runs", command, "nope", "--store", str(db), *extra])
    assert out.exit_code == 2
    assert "no run 'nope'" in out.output


def test_runs_export_json_holds_every_activation_and_call(app: typer.Typer, db: Path) -> None:
    result = asyncio.run(build_graph().run("task", backend(), store=db, durability="sync"))
    out = runner.invoke(app, ["runs", "export", result.run_id, "--json", "--store", str(db)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["run"]["run_id"] == result.run_id
    assert [m["text"] for m in data["transcript"]] == [m.text for m in result.transcript]
    assert len(data["activations"]) == ACTIVATIONS
    calls = [c for a in data["activations"] for c in a["calls"]]
    assert len(calls) == result.usage.requests
    assert {e["kind"] for e in data["events"]} >= {"run_started", "run_finished"}


def test_runs_export_without_json_flag_exports_json(app: typer.Typer, db: Path) -> None:
    result = asyncio.run(build_graph().run("task", backend(), store=db, durability="sync"))
    out = runner.invoke(app, ["runs", "export", result.run_id, "--store", str(db)])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["run"]["run_id"] == result.run_id


@pytest.mark.usefixtures("scenario_backend")
def test_runs_resume_finishes_a_failed_run_with_the_given_graph(
    app: typer.Typer, db: Path, tmp_path: Path
) -> None:
    run_id = _failed_run(db)
    spec = f"{_graph_file(tmp_path)}:graph"
    out = runner.invoke(
        app,
        ["runs", "resume", run_id, "--graph", spec, "--model", "scenario:x", "--store", str(db)],
    )
    assert out.exit_code == 0, out.output
    assert f"run {run_id} completed" in out.output
    record = open_store(db).get_run(run_id)
    assert (record.status, record.attempts, record.activations) == ("completed", 2, ACTIVATIONS)


@pytest.mark.usefixtures("scenario_backend")
def test_runs_resume_uses_the_recorded_graph_source(
    app: typer.Typer, db: Path, tmp_path: Path
) -> None:
    run_id = _failed_run(db, source=f"{_graph_file(tmp_path)}:graph")
    out = runner.invoke(
        app, ["runs", "resume", run_id, "--model", "scenario:x", "--store", str(db)]
    )
    assert out.exit_code == 0, out.output
    assert open_store(db).get_run(run_id).status == "completed"


def test_runs_resume_with_another_graph_exits_2(app: typer.Typer, db: Path, tmp_path: Path) -> None:
    run_id = _failed_run(db)
    other = tmp_path / "other.py"
    other.write_text("from _scenario import build_graph\n\ngraph = build_graph(extra=True)\n")
    out = runner.invoke(
        app, ["runs", "resume", run_id, "--graph", f"{other}:graph", "--store", str(db)]
    )
    assert out.exit_code == 2
    assert "structure" in out.output


def test_runs_list_on_a_file_that_is_not_a_store_exits_1(app: typer.Typer, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_text("not a database" * 20)
    out = runner.invoke(app, ["runs", "list", "--store", str(bogus)])
    assert out.exit_code == 1
    assert "StoreCorruptError" in out.output


def test_runs_trace_writes_an_html_file(app: typer.Typer, db: Path, tmp_path: Path) -> None:
    result = asyncio.run(build_graph().run("task", backend(), store=db, durability="sync"))
    target = tmp_path / "out.html"
    out = runner.invoke(
        app, ["runs", "trace", result.run_id, "--html", str(target), "--store", str(db)]
    )
    assert out.exit_code == 0, out.output
    assert target.read_text().startswith("<!DOCTYPE html>")


def test_runs_show_prints_markup_and_escape_codes_from_a_model_as_text(
    app: typer.Typer, db: Path
) -> None:
    nasty = "[/bold] [red]x[/red] openai:m: \x1b[31mred\x1b[0m api_key=sk-abcdefgh123"
    graph = accord.Graph("g").add(accord.Agent("a"), accord.Agent("b")).connect("a", "b")
    result = asyncio.run(graph.run(nasty, FunctionBackend(lambda r: nasty), store=db))
    out = runner.invoke(
        app, ["runs", "show", result.run_id, "--store", str(db)], env={"COLUMNS": "200"}
    )
    assert out.exit_code == 0, out.output
    assert "[/bold] [red]x[/red] openai:m:" in out.output
    assert "\x1b" not in out.output
    assert "sk-abcdefgh123" not in out.output  # what looks like a secret is redacted when shown


def test_runs_resume_rebuilds_a_built_in_patterns_run_from_what_it_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accord.cli import app as accord_app

    _registry.register_backend("scenario", lambda model, **options: backend())
    try:
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("ACCORD_STORE", raising=False)
        out = runner.invoke(
            accord_app,
            [
                *("run", "round_robin", "say hi", "--model", "scenario:x", "-n", "2"),
                *("--top-p", "0.5", "--quiet"),
            ],
        )
        assert out.exit_code == 0, out.output
        store = open_store(tmp_path / ".accord" / "runs.db")  # the command records by default
        (record,) = store.list_runs()
        run_id = record.run_id
        assert json.loads(store.get_run(run_id).graph_source or "{}") == {
            "pattern": "round_robin",
            "agents": 2,
            "rounds": None,
            "top_p": 0.5,
        }
        again = runner.invoke(accord_app, ["runs", "resume", run_id, "--model", "scenario:x"])
        assert again.exit_code == 0, again.output
        assert f"run {run_id} completed" in again.output
    finally:
        _registry._factories.pop("scenario", None)


GRAPH_WITH_OWN_PAYLOAD = """
import accord


class Score(accord.Payload):
    value: int
    why: str


@accord.step
def judge(text: str) -> Score:
    return Score(value=7, why="[/bold] fine")


graph = accord.Graph("scored").add(judge)
"""


def test_runs_commands_read_a_run_whose_graph_defines_its_own_payload(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "scored.py").write_text(GRAPH_WITH_OWN_PAYLOAD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("ACCORD_DURABILITY", None)
    env.pop("ACCORD_STORE", None)

    def accord_cmd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "accord.cli", *args],
            cwd=tmp_path,
            env={**env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
        )

    ran = accord_cmd("run", "scored.py:graph", "rate this", "--json")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    shown = accord_cmd("runs", "show", run_id)  # a new process: Score is not defined there
    assert shown.returncode == 0, shown.stderr
    assert "[/bold] fine" in shown.stdout
    exported = accord_cmd("runs", "export", run_id)
    assert exported.returncode == 0, exported.stderr
    payload = json.loads(exported.stdout)["transcript"][0]["payload"]
    assert payload == {"kind": "Score", "value": 7, "why": "[/bold] fine"}
    traced = accord_cmd("runs", "trace", run_id, "--html", "t.html")
    assert traced.returncode == 0, traced.stderr
    assert "Score" in (tmp_path / "t.html").read_text()
