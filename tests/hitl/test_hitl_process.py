"""A paused run outlives its process: one process runs it until it waits and exits, another
answers and finishes it. And ``examples/approval.py``, paused and resumed from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

START = """
import asyncio, sys
sys.path.insert(0, {here!r})
import _graphs
result = asyncio.run(_graphs.with_side_branch(_graphs.approval_graph()).run("x", store={db!r}))
print(result.status, result.run_id, _graphs.DONE)
"""

FINISH = """
import asyncio, sys
sys.path.insert(0, {here!r})
import _graphs
graph = _graphs.with_side_branch(_graphs.approval_graph())
result = asyncio.run(graph.resume({run_id!r}, store={db!r}, answers={answers!r}))
print(result.status, repr(result.outputs["act"].text), _graphs.DONE)
"""


def _python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_a_paused_run_is_answered_and_finished_by_another_process(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    status, run_id, done = _python(START.format(here=str(HERE), db=db)).split(" ", 2)
    assert status == "waiting"
    assert "draft" in done and "side2" in done and "act" not in done
    out = _python(
        FINISH.format(
            here=str(HERE), db=db, run_id=run_id, answers={"review/0/q0": {"approved": True}}
        )
    )
    assert out == "completed 'done' ['act']"  # only the step waiting for the answer ran


def _accord(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def test_example_approval_pauses_and_is_resumed_from_the_command_line(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for name in ("a.tmp", "b.tmp", "keep.txt"):
        (scratch / name).write_text(name)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACCORD_STORE": str(tmp_path / "runs.db")}
    example = f"{ROOT / 'examples' / 'approval.py'}:graph"
    started = _accord("run", example, str(scratch), "--no-input", "--json", env=env, cwd=tmp_path)
    assert started.returncode == 0, started.stderr[-3000:]
    data = json.loads(started.stdout)
    assert data["status"] == "waiting"
    assert data["outputs"]["report"]["text"].endswith("bytes")  # the other branch finished
    [question] = data["questions"]
    assert "a.tmp, b.tmp" in question["question"]
    assert sorted(p.name for p in scratch.iterdir()) == ["a.tmp", "b.tmp", "keep.txt"]

    listed = _accord("runs", "list", "--waiting", env=env, cwd=tmp_path)
    assert data["run_id"] in listed.stdout and question["id"] in listed.stdout

    wrong = _accord("runs", "answer", data["run_id"], "sure", "--resume", env=env, cwd=tmp_path)
    assert wrong.returncode == 2 and "stays waiting" in wrong.stderr
    assert len(list(scratch.iterdir())) == 3

    answered = _accord(
        "runs", "answer", data["run_id"], '{"approved": true}', "--resume", env=env, cwd=tmp_path
    )
    assert answered.returncode == 0, answered.stderr[-3000:]
    assert "completed: deleted 2 file(s)" in answered.stdout
    assert [p.name for p in scratch.iterdir()] == ["keep.txt"]
