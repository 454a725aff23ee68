"""``accord batch``: results streamed to --out, bad lines named, and a batch SIGKILLed mid-way
that, started again, loses no finished run and repeats none."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).parent
GRAPH = f"{HERE / 'batch_graphs.py'}:chain"


def _batch(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = {**os.environ, "PYTHONPATH": os.getcwd(), "ACCORD_STORE": str(tmp / "runs.db")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "accord.cli",
            "batch",
            GRAPH,
            str(tmp / "tasks.jsonl"),
            "--out",
            str(tmp / "out.jsonl"),
            *args,
        ],
        env={**full, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write_tasks(tmp: Path, tasks: list[object]) -> None:
    (tmp / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))


def test_batch_command_writes_a_line_per_task_and_exits_1_when_one_failed(tmp_path: Path) -> None:
    _write_tasks(
        tmp_path, ["TASK t1", {"id": "q", "task": "TASK t2", "meta": {"gold": 2}}, "TASK fail3"]
    )
    p = _batch(tmp_path)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1, err
    lines = {d["id"]: d for d in _lines(tmp_path / "out.jsonl")}
    assert {k: d["status"] for k, d in lines.items()} == {
        "1": "completed",
        "q": "completed",
        "3": "failed",
    }
    assert lines["q"]["meta"] == {"gold": 2} and str(lines["q"]["output"]).startswith("c:t2:")
    assert "--retry-failed" in err
    p = _batch(tmp_path, "--retry-failed")  # fails again, and its old line is replaced
    p.communicate(timeout=60)
    assert [d["id"] for d in _lines(tmp_path / "out.jsonl")] == ["1", "q", "3"]


def test_batch_command_bad_line_exits_2_naming_it(tmp_path: Path) -> None:
    (tmp_path / "tasks.jsonl").write_text('"TASK t1"\n{"task": "x", "tries": 3}\n')
    p = _batch(tmp_path)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2
    assert "tasks.jsonl line 2: unknown key(s) 'tries'" in " ".join(err.split())
    assert not (tmp_path / "out.jsonl").exists()


def test_batch_command_refuses_an_out_file_of_another_batch(tmp_path: Path) -> None:
    _write_tasks(tmp_path, ["TASK t1"])
    (tmp_path / "out.jsonl").write_text('{"id": "1", "run_id": "other-1"}\n')
    p = _batch(tmp_path)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "results of another batch" in " ".join(err.split())


@pytest.mark.crash
def test_batch_command_sigkilled_and_rerun_loses_and_repeats_no_finished_run(
    tmp_path: Path,
) -> None:
    n = 16
    _write_tasks(tmp_path, [f"TASK k{i}" for i in range(n)])
    log = tmp_path / "calls.log"
    env = {"CALL_LOG": str(log), "BATCH_DELAY": "0.05", "ACCORD_DURABILITY": "sync"}
    out = tmp_path / "out.jsonl"
    first = _batch(tmp_path, "--concurrency", "3", env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if out.exists() and len(out.read_text().splitlines()) >= 4:
            break
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    done_before = {
        str(json.loads(line)["id"]) for line in out.read_text().splitlines() if line.endswith("}")
    }
    assert 4 <= len(done_before) < n
    calls_before = Counter(tuple(line.split()[:2]) for line in log.read_text().splitlines())

    second = _batch(tmp_path, "--concurrency", "3", env=env)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    lines = _lines(out)
    assert sorted(str(d["id"]) for d in lines) == sorted(str(i) for i in range(1, n + 1))
    assert all(d["status"] == "completed" for d in lines)
    assert all(str(d["output"]).startswith(f"c:k{int(str(d['id'])) - 1}:") for d in lines)
    calls = Counter(tuple(line.split()[:2]) for line in log.read_text().splitlines())
    rerun = calls - calls_before
    for task_id in done_before:  # a finished run is never run again
        task = f"k{int(task_id) - 1}"
        assert all(rerun[(task, agent)] == 0 for agent in "abc"), task
    # an activation runs at most twice (once more only when it was in flight at the kill), and
    # only the runs in flight at the kill (at most --concurrency) repeat anything
    assert max(calls.values()) <= 2
    assert len({task for (task, _agent), k in calls.items() if k == 2}) <= 3
    started = {task for task, _agent in calls_before}
    interrupted = {str(int(t[1:]) + 1) for t in started} - done_before
    assert interrupted and any(d["resumed"] for d in lines if str(d["id"]) in interrupted)


def test_batch_command_ctrl_c_exits_130_and_the_rerun_finishes_the_batch(tmp_path: Path) -> None:
    n = 10
    _write_tasks(tmp_path, [f"TASK s{i}" for i in range(n)])
    out = tmp_path / "out.jsonl"
    env = {"BATCH_DELAY": "0.05"}
    first = _batch(tmp_path, "--concurrency", "2", env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.exists() and out.read_text().count("\n") >= 2):
        time.sleep(0.01)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=30)
    assert first.returncode == 130 and "run the same command again" in " ".join(err.split())
    kept = len(out.read_text().splitlines())
    assert 2 <= kept < n
    second = _batch(tmp_path, "--concurrency", "2", env=env)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert sorted(int(str(d["id"])) for d in _lines(out)) == list(range(1, n + 1))
    assert "already done" in err
