"""Crash and resume for real: SIGKILL a subprocess at named points, resume in a new process.

For every crash point and seed the resumed run must equal the uninterrupted one, no activation
that was stored before the crash calls its model again, no message is stored twice, and SQLite's
integrity check passes. Also: two processes writing into one store, and a resume refused while
another live process executes the run.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from _scenario import ACTIVATIONS, backend, build_graph, count_calls, spawn, transcript_facts

from accord.errors import RunBusyError
from accord.store import SQLiteStore

pytestmark = pytest.mark.crash

POINTS = [
    "before_model_call",
    "after_model_response_before_persist",
    "mid_store_transaction",
    "after_store_commit",
]
SEEDS = {
    # seed: (node, round) where the crash fires, the crashed run's durability, and the model's
    # latency (with "async" records go to the store in batches every 50 ms: a run killed before
    # its first batch is not in the store, so that run is made slow enough to have several)
    0: (("b", 0), "sync", 0.0),
    1: (("reviser", 1), "sync", 0.0),
    2: (("critic", 2), "async", 0.03),
}
MODEL_NODES = {"planner", "a", "b", "reviser", "critic", "final"}


@pytest.fixture(scope="module")
def golden() -> list[dict[str, Any]]:
    """The uninterrupted run's transcript (in memory, same run id as the crash tests)."""
    result = asyncio.run(
        build_graph().run("write a limerick", backend(), run_id="crashrun", durability="off")
    )
    assert result.status == "completed" and len(result.transcript) == ACTIVATIONS
    return transcript_facts(result.transcript)


def _stored(db: Path) -> set[tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        return {(n, r) for n, r in conn.execute("SELECT node, round FROM activations")}


def _check_database(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT json_extract(message, '$.id')) FROM activations"
        ).fetchone()
        assert total == distinct == ACTIVATIONS
        status, attempts = conn.execute("SELECT status, attempts FROM runs").fetchone()
        assert (status, attempts) == ("completed", 2)
        assert conn.execute("SELECT count(*) FROM leases").fetchone()[0] == 0


@pytest.mark.parametrize("seed", sorted(SEEDS))
@pytest.mark.parametrize("point", POINTS)
def test_resume_after_sigkill_equals_the_uninterrupted_run(
    point: str, seed: int, tmp_path: Path, golden: list[dict[str, Any]]
) -> None:
    (node, rnd), durability, delay = SEEDS[seed]
    db, calls, out = tmp_path / "runs.db", tmp_path / "calls.log", tmp_path / "out.json"
    crashed = spawn(
        "run",
        store=db,
        run_id="crashrun",
        calls=calls,
        seed=seed,
        durability=durability,
        delay=delay,
        crash_at=f"{point}:node={node}:round={rnd}",
    )
    assert isinstance(crashed, subprocess.CompletedProcess)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    finished = _stored(db)
    in_store_before = point in ("after_store_commit",)
    assert ((node, rnd) in finished) == in_store_before
    before = count_calls(str(calls))

    resumed = spawn("resume", store=db, run_id="crashrun", calls=calls, seed=seed, out=out)
    assert isinstance(resumed, subprocess.CompletedProcess)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "completed"
    assert result["transcript"] == golden

    counts = count_calls(str(calls))
    for key in finished & {(n, r) for n, r in counts if n in MODEL_NODES}:
        assert counts[key] == 1, f"{key} was stored before the crash but called its model again"
    for entry in golden:
        key = (entry["sender"], entry["round"])
        if entry["sender"] in MODEL_NODES:
            assert 1 <= counts.get(key, 0) <= 2, (key, counts.get(key))
            if key not in finished:
                assert counts[key] == before.get(key, 0) + 1
    _check_database(db)


SECRET_TASK = "review this config: api_key: demo123, Authorization: Bearer tok-42"


@pytest.mark.parametrize("durability", ["sync", "async"])
def test_resume_of_a_task_that_looks_like_a_secret_equals_the_uninterrupted_run(
    tmp_path: Path, durability: str
) -> None:
    golden = asyncio.run(
        build_graph().run(SECRET_TASK, backend(), run_id="crashrun", durability="off")
    )
    db, calls, out = tmp_path / "runs.db", tmp_path / "calls.log", tmp_path / "out.json"
    crashed = spawn(
        "run",
        store=db,
        run_id="crashrun",
        calls=calls,
        durability=durability,
        delay=0.03 if durability == "async" else 0.0,
        crash_at="before_model_call:node=critic:round=1",
        task=SECRET_TASK,
    )
    assert isinstance(crashed, subprocess.CompletedProcess)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert _stored(db)  # some activations were stored before the crash
    resumed = spawn("resume", store=db, run_id="crashrun", calls=calls, out=out)
    assert isinstance(resumed, subprocess.CompletedProcess)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "completed"
    assert result["transcript"] == transcript_facts(golden.transcript)


def test_two_processes_write_runs_into_one_store_at_once(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    SQLiteStore(db).close()
    procs = [
        spawn(
            "run",
            store=db,
            run_id=f"writer{i}",
            calls=tmp_path / f"c{i}.log",
            seed=i,
            durability=mode,
            wait=False,
        )
        for i, mode in enumerate(["sync", "async"])
    ]
    for proc in procs:
        assert isinstance(proc, subprocess.Popen)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    store = SQLiteStore(db)
    for i in range(2):
        record = store.get_run(f"writer{i}")
        assert record.status == "completed"
        assert record.activations == ACTIVATIONS
        messages = [a.message for a in store.activations(f"writer{i}")]
        assert len({m.id for m in messages}) == ACTIVATIONS
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_resume_is_refused_while_another_process_executes_the_run(tmp_path: Path) -> None:
    db, calls = tmp_path / "runs.db", tmp_path / "calls.log"
    SQLiteStore(db).close()
    proc = spawn("run", store=db, run_id="busy", calls=calls, delay=0.5, wait=False)
    assert isinstance(proc, subprocess.Popen)
    try:
        store = SQLiteStore(db)
        deadline = time.monotonic() + 30
        while not store.has_run("busy"):
            assert time.monotonic() < deadline, "the run never started"
            await asyncio.sleep(0.05)
        with pytest.raises(RunBusyError, match="another process") as info:
            await build_graph().resume("busy", backend(), store=store)
        assert info.value.run_id == "busy"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    # the owner is dead: its lease is stale and the run can be taken over
    result = await build_graph().resume("busy", backend(), store=store, durability="sync")
    assert result.status == "completed"
    assert len(result.transcript) == ACTIVATIONS
