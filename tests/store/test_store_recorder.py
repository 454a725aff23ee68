"""The recorder's durability modes: when records reach the file, and how write failures surface."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from _scenario import ACTIVATIONS, backend, build_graph

import accord
from accord import _crash
from accord.errors import ConfigError, RunBusyError, StoreError
from accord.store import SQLiteStore, flush_all
from accord.store._base import WriteBatch
from accord.testing import FunctionBackend


def _stored_nodes(db: Path) -> list[tuple[str, int]]:
    """What another reader of the file sees now (a fresh connection, not the store's)."""
    with sqlite3.connect(db) as conn:
        return [tuple(r) for r in conn.execute("SELECT node, round FROM activations")]


def _probe_graph(db: Path, seen: list[list[tuple[str, int]]]) -> accord.Graph:
    @accord.step
    def probe(text: str) -> str:
        seen.append(_stored_nodes(db))
        return text

    g = accord.Graph("probe")
    g.add(accord.Agent("a"), accord.Agent("b"), probe)
    g.connect("a", "b")
    g.connect("b", "probe")
    return g


async def test_sync_commits_an_activation_before_its_message_is_delivered(db: Path) -> None:
    seen: list[list[tuple[str, int]]] = []
    await _probe_graph(db, seen).run("task", backend(), store=db, durability="sync")
    assert seen == [[("a", 0), ("b", 0)]]


async def test_async_writes_a_long_run_while_it_runs(db: Path) -> None:
    seen: list[list[tuple[str, int]]] = []
    result = await _probe_graph(db, seen).run(
        "task", backend(delay=0.15), store=db, durability="async"
    )
    assert seen and ("a", 0) in seen[0]  # handed to the writer thread during the run
    assert SQLiteStore(db).get_run(result.run_id).status == "completed"
    assert sorted(_stored_nodes(db)) == [("a", 0), ("b", 0), ("probe", 0)]


async def test_async_short_run_is_readable_when_run_returns_and_durable_after_flush(
    db: Path,
) -> None:
    seen: list[list[tuple[str, int]]] = []
    store = SQLiteStore(db)
    result = await _probe_graph(db, seen).run("task", backend(), store=store, durability="async")
    assert seen == [[]]  # nothing written during a run shorter than the hand-off interval
    assert len(store.activations(result.run_id)) == 3  # a read waits for the writer
    store.flush()
    assert len(_stored_nodes(db)) == 3
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM runs").fetchone() == ("completed",)
        assert conn.execute("SELECT count(*) FROM leases").fetchone() == (0,)
    assert result.status == "completed"


class _FailingStore(SQLiteStore):
    """A store whose writes fail once a run has started (a full disk, say)."""

    def write(self, batch: WriteBatch) -> None:
        if batch.activations:
            raise StoreError(f"disk full while writing {self.location}")
        super().write(batch)


async def test_a_failed_sync_write_raises_store_error_with_the_result(db: Path) -> None:
    with pytest.raises(StoreError, match="disk full") as info:
        await build_graph().run("task", backend(), store=_FailingStore(db), durability="sync")
    assert info.value.result is not None


async def test_a_failed_async_write_is_raised_by_flush_and_by_the_next_run(db: Path) -> None:
    store = _FailingStore(db)
    result = await build_graph().run("task", backend(), store=store, durability="async")
    assert result.status == "completed" and len(result.transcript) == ACTIVATIONS
    with pytest.raises(StoreError, match="disk full"):
        store.flush()
    await build_graph().run("task", backend(), store=store, durability="async")
    flush_all()  # the writer has met the failure (and keeps it for the next run)
    with pytest.raises(StoreError, match="disk full") as info:
        await build_graph().run("task", backend(), store=store, durability="async")
    assert info.value.result is not None and info.value.result.status == "completed"
    store.close()


async def test_two_resumes_at_once_only_one_proceeds(db: Path) -> None:
    first = await build_graph().run("task", backend(), store=db, durability="sync")
    outcomes: list[Any] = await asyncio.gather(
        build_graph().resume(first.run_id, backend(), store=db),
        build_graph().resume(first.run_id, backend(), store=db),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["RunBusyError", "RunResult"]
    busy = next(o for o in outcomes if isinstance(o, RunBusyError))
    assert busy.run_id == first.run_id


async def test_resume_with_durability_off_is_refused(db: Path) -> None:
    first = await build_graph().run("task", backend(), store=db, durability="sync")
    with pytest.raises(ConfigError, match="durability='async' or 'sync'"):
        await build_graph().resume(first.run_id, backend(), store=db, durability="off")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("before_model_call", ("before_model_call", {})),
        (
            "mid_store_transaction:node=critic:round=1",
            ("mid_store_transaction", {"node": "critic", "round": "1"}),
        ),
    ],
)
def test_crash_spec_parses_point_and_facts(spec: str, expected: tuple[str, dict[str, str]]) -> None:
    assert _crash.parse(spec) == expected


@pytest.mark.parametrize("spec", ["after_lunch", "before_model_call:node"])
def test_crash_spec_with_unknown_point_or_bad_fact_raises(spec: str) -> None:
    with pytest.raises(ValueError):
        _crash.parse(spec)


@pytest.mark.parametrize("durability", ["async", "sync"])
async def test_a_cancelled_run_is_recorded_and_resumes(db: Path, durability: str) -> None:
    graph = build_graph()
    task = asyncio.create_task(
        graph.run("task", backend(delay=0.02), run_id="cut", store=db, durability=durability)
    )
    store = SQLiteStore(db)
    for _ in range(1000):  # until part of the run is in the store
        if len(_stored_nodes(db)) >= 4 if durability == "sync" else store.has_run("cut"):
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = store.get_run("cut")
    assert record.status == "cancelled"
    done = set(_stored_nodes(db))
    model = backend()
    result = await build_graph().resume("cut", model, store=db)
    assert result.status == "completed" and len(result.transcript) == ACTIVATIONS
    assert not done & {(r.agent, r.round) for r in model.requests}


@pytest.mark.parametrize("durability", ["async", "sync"])
async def test_each_new_store_gets_every_text_its_calls_refer_to(
    tmp_path: Path, durability: str
) -> None:
    import gc

    for i in range(6):  # a dead store's id is often reused by the next one
        store = SQLiteStore(tmp_path / f"s{i}.db")
        result = await build_graph().run("task", backend(), store=store, durability=durability)
        calls = [c for a in store.activations(result.run_id, calls=True) for c in a.calls]
        assert len(calls) == 10
        store.close()
        del store
        gc.collect()


async def test_async_recording_encodes_and_writes_nothing_on_the_event_loop(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accord.store import _recorder

    threads: list[int] = []
    encode, write = _recorder.Recorder.encode_all, SQLiteStore.write

    def spy_encode(self: Any, *args: Any) -> None:
        threads.append(threading.get_ident())
        encode(self, *args)

    def spy_write(self: Any, batch: WriteBatch) -> None:
        threads.append(threading.get_ident())
        write(self, batch)

    monkeypatch.setattr(_recorder.Recorder, "encode_all", spy_encode)
    monkeypatch.setattr(SQLiteStore, "write", spy_write)
    big = "x" * 100_000
    store = SQLiteStore(db)
    graph = accord.Graph("g").add(accord.Agent("a"), accord.Agent("b")).connect("a", "b")
    result = await graph.run("task", FunctionBackend(lambda r: big), store=store)
    store.flush()
    assert [a.message.text for a in store.activations(result.run_id)] == [big, big]
    assert threads and threading.get_ident() not in threads  # the writer thread did it all
    store.close()
