"""Exactly once across a crash: a side-effecting tool, SIGKILL before the activation's commit,
resume in a new process (tests/tools/crash_scenario.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

SCENARIO = Path(__file__).resolve().parent / "crash_scenario.py"
ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, mode: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACCORD_DURABILITY": "sync"}
    return subprocess.run(
        [sys.executable, str(SCENARIO), str(tmp_path / "runs.db"), str(tmp_path), mode, *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _crash_then_resume(tmp_path: Path, flag: str, *extra: str) -> list[dict[str, Any]]:
    (tmp_path / flag).write_text("x")
    first = _run(tmp_path, "run", *extra)
    assert first.returncode == -signal.SIGKILL, first.stderr
    second = _run(tmp_path, "resume", *extra)
    assert second.returncode == 0, second.stderr
    return [json.loads(line) for line in second.stdout.splitlines()]


def _sent(tmp_path: Path) -> list[str]:
    return (tmp_path / "sent.txt").read_text().splitlines()


def test_side_effect_tool_with_a_journaled_result_is_not_run_again_on_resume(
    tmp_path: Path,
) -> None:
    lines = _crash_then_resume(tmp_path, "kill_in_check")

    assert _sent(tmp_path) == ["bob"]
    send = next(x for x in lines if x.get("tool") == "send")
    assert (send["cached"], send["error"], send["result"]) == (True, None, "sent to bob")
    assert lines[-1] == {"output": "done"}


def test_side_effect_tool_killed_mid_call_is_reported_not_run_again(tmp_path: Path) -> None:
    lines = _crash_then_resume(tmp_path, "kill_in_send")

    assert _sent(tmp_path) == ["bob"]
    send = next(x for x in lines if x.get("tool") == "send")
    assert send["error"] == "unknown_outcome" and "outcome is unknown" in send["result"]
    assert lines[-1] == {"output": "done"}


def test_idempotent_side_effect_tool_killed_mid_call_runs_again(tmp_path: Path) -> None:
    lines = _crash_then_resume(tmp_path, "kill_in_send", "idempotent")

    assert _sent(tmp_path) == ["bob", "bob"]
    send = next(x for x in lines if x.get("tool") == "send")
    assert send["error"] is None and not send["cached"]
