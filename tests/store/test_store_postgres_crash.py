"""Crash, resume and the lease on PostgreSQL, with real processes (as test_store_crash does for
SQLite): SIGKILL a run at named points and resume it in a new process; two processes resuming
one run at once, of which exactly one gets it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _scenario import ACTIVATIONS, backend, build_graph, count_calls, spawn, transcript_facts

if os.environ.get("ACCORD_TEST_POSTGRES") != "required":
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'psycopg[binary]'")
import psycopg

pytestmark = pytest.mark.crash

POINTS = [
    "before_model_call",
    "after_model_response_before_persist",
    "mid_store_transaction",
    "after_store_commit",
]
SEEDS = {0: (("b", 0), "sync", 0.0), 2: (("critic", 2), "async", 0.03)}
MODEL_NODES = {"planner", "a", "b", "reviser", "critic", "final"}


@pytest.fixture(scope="module")
def golden() -> list[dict[str, Any]]:
    result = asyncio.run(
        build_graph().run("write a limerick", backend(), run_id="crashrun", durability="off")
    )
    return transcript_facts(result.transcript)


def _stored(url: str) -> set[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        return {(n, r) for n, r in conn.execute("SELECT node, round FROM activations")}


def _check_database(url: str, attempts: int = 2) -> None:
    with psycopg.connect(url) as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT message::json->>'id') FROM activations"
        ).fetchone() or (0, 0)
        assert total == distinct == ACTIVATIONS
        assert conn.execute("SELECT status, attempts FROM runs").fetchall() == [
            ("completed", attempts)
        ]
        assert conn.execute("SELECT count(*) FROM leases").fetchone() == (0,)


@pytest.mark.parametrize("seed", sorted(SEEDS))
@pytest.mark.parametrize("point", POINTS)
def test_postgres_resume_after_sigkill_equals_the_uninterrupted_run(
    point: str, seed: int, tmp_path: Path, postgres_url: str, golden: list[dict[str, Any]]
) -> None:
    (node, rnd), durability, delay = SEEDS[seed]
    calls, out = tmp_path / "calls.log", tmp_path / "out.json"
    crashed = spawn(
        "run",
        store=postgres_url,  # type: ignore[arg-type]
        run_id="crashrun",
        calls=calls,
        seed=seed,
        durability=durability,
        delay=delay,
        crash_at=f"{point}:node={node}:round={rnd}",
    )
    assert isinstance(crashed, subprocess.CompletedProcess)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    finished = _stored(postgres_url)
    assert ((node, rnd) in finished) == (point == "after_store_commit")

    resumed = spawn(
        "resume",
        store=postgres_url,
        run_id="crashrun",
        calls=calls,
        seed=seed,
        out=out,  # type: ignore[arg-type]
    )
    assert isinstance(resumed, subprocess.CompletedProcess)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "completed"
    assert result["transcript"] == golden
    counts = count_calls(str(calls))
    for key in finished & {(n, r) for n, r in counts if n in MODEL_NODES}:
        assert counts[key] == 1, f"{key} was stored before the crash but called its model again"
    _check_database(postgres_url)


def test_two_processes_resuming_one_run_exactly_one_gets_it(
    tmp_path: Path, postgres_url: str
) -> None:
    crashed = spawn(
        "run",
        store=postgres_url,  # type: ignore[arg-type]
        run_id="shared",
        calls=tmp_path / "c0.log",
        crash_at="before_model_call:node=reviser:round=0",
    )
    assert isinstance(crashed, subprocess.CompletedProcess)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    procs = [
        spawn(
            "resume",
            store=postgres_url,  # type: ignore[arg-type]
            run_id="shared",
            calls=tmp_path / f"c{i}.log",
            delay=0.4,  # the winner holds the run for seconds
            out=tmp_path / f"out{i}.json",
            wait=False,
        )
        for i in (1, 2)
    ]
    errors = []
    for proc in procs:
        assert isinstance(proc, subprocess.Popen)
        _, err = proc.communicate(timeout=120)
        errors.append((proc.returncode, err))
    assert sorted(code for code, _ in errors) == [0, 1], errors
    loser = next(err for code, err in errors if code != 0)
    assert "RunBusyError" in loser and "another process" in loser
    _check_database(postgres_url)
    winner = next(i for i, (code, _) in zip((1, 2), errors, strict=True) if code == 0)
    assert json.loads((tmp_path / f"out{winner}.json").read_text())["status"] == "completed"
    assert count_calls(str(tmp_path / f"c{3 - winner}.log")) == {}  # the loser called no model
