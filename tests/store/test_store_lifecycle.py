"""A store is an owned resource: opening and closing, its writer thread, and where it may live."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from _scenario import ACTIVATIONS, backend, build_graph

import accord
from accord.errors import StoreError
from accord.store import SQLiteStore, _recorder, open_store, shared_store
from accord.store._base import WriteBatch


def _open_files() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return found


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "accord-store-writer"]


def test_forty_stores_opened_and_closed_leave_no_thread_and_no_open_file(tmp_path: Path) -> None:
    async def main() -> None:
        for i in range(40):
            async with open_store(tmp_path / f"s{i}.db") as store:
                result = await build_graph().run("task", backend(), store=store)
                assert result.status == "completed"

    threads, files = len(_writer_threads()), _open_files()
    asyncio.run(main())
    assert len(_writer_threads()) == threads
    assert {f for f in _open_files() - files if str(tmp_path) in f} == set()
    assert len(SQLiteStore(tmp_path / "s39.db").activations(_last_run(tmp_path / "s39.db"))) == (
        ACTIVATIONS
    )


def _last_run(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("SELECT run_id FROM runs").fetchone()[0])


def test_closed_store_leaves_the_caches_and_refuses_use(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    shared = shared_store(db)
    accord.configure(store=shared)
    shared.close()
    shared.close()  # idempotent
    assert shared_store(db) is not shared  # a new store for the path, not the closed one
    from accord._config import configured_store

    assert configured_store() is None
    with pytest.raises(StoreError, match="closed"):
        shared.get_run("x")
    with pytest.raises(StoreError, match="closed"):
        asyncio.run(build_graph().run("task", backend(), store=shared))


class _SlowStore(SQLiteStore):
    def write(self, batch: WriteBatch) -> None:
        import time

        time.sleep(0.05)
        super().write(batch)


def test_a_run_cancelled_while_the_writer_writes_does_not_hang_later_runs(tmp_path: Path) -> None:
    store = _SlowStore(tmp_path / "runs.db")

    async def cancelled() -> None:
        run = asyncio.create_task(build_graph().run("task", backend(delay=0.03), store=store))
        await asyncio.sleep(0.12)
        for _ in range(3):  # cancelled again while it waits for the writer, as Ctrl-C does
            run.cancel()
            await asyncio.sleep(0)
        # returns with the run still unwinding: asyncio.run closes the loop under the writer

    for _ in range(3):
        asyncio.run(cancelled())

    async def later() -> accord.RunResult:
        async with asyncio.timeout(20):
            return await build_graph().run("task", backend(delay=0.01), store=store)

    result = asyncio.run(later())
    assert result.status == "completed"
    assert store.get_run(result.run_id).status == "completed"
    statuses = {r.status for r in store.list_runs()}
    assert statuses == {"cancelled", "completed"}
    store.close()


def test_a_dead_writer_fails_the_run_that_finds_it_and_the_next_run_gets_a_new_one(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    asyncio.run(build_graph().run("task", backend(), store=store))
    writer = _recorder._writers[id(store)]
    writer.stop()  # the thread ends, as if it had died, but stays registered
    assert not writer.thread.is_alive()
    with pytest.raises(StoreError, match="writer thread"):
        asyncio.run(build_graph().run("task", backend(), store=store))
    result = asyncio.run(build_graph().run("task", backend(), store=store))
    assert store.get_run(result.run_id).status == "completed"
    assert _recorder._writers[id(store)] is not writer
    store.close()


def test_store_path_that_is_a_folder_is_a_clear_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a folder. Give a file path"):
        open_store(tmp_path)


def test_store_path_under_a_file_is_a_clear_store_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(StoreError, match="is a file, not a folder"):
        open_store(tmp_path / "plain" / "runs.db")


def test_store_on_a_read_only_filesystem_is_a_clear_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "runs.db"
    SQLiteStore(db).close()
    real = sqlite3.connect

    def read_only(path: str, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if kwargs.get("uri"):
            return real(path, *args, **kwargs)
        kwargs["uri"] = True
        return real(f"file:{path}?mode=ro", *args, **kwargs)  # what a read-only mount does

    monkeypatch.setattr(sqlite3, "connect", read_only)
    (tmp_path / "runs.db-wal").unlink(missing_ok=True)
    with pytest.raises(StoreError, match="cannot be written") as info:
        SQLiteStore(db)
    assert type(info.value) is StoreError  # not reported as a damaged store
    assert "writable folder" in str(info.value)


async def test_text_the_store_cannot_encode_is_recorded_without_losing_the_run(
    tmp_path: Path,
) -> None:
    from accord.testing import FunctionBackend

    half_emoji = "an answer \ud83d with half an emoji"
    graph = accord.Graph("g").add(accord.Agent("a"), accord.Agent("b")).connect("a", "b")
    for mode in ("sync", "async"):
        store = SQLiteStore(tmp_path / f"{mode}.db")
        result = await graph.run(
            "task", FunctionBackend(lambda r: half_emoji), store=store, durability=mode
        )
        assert result.status == "completed" and result.text == half_emoji
        stored = store.activations(result.run_id, calls=True)
        assert [a.message.text for a in stored] == ["an answer \ufffd with half an emoji"] * 2
        assert store.get_run(result.run_id).status == "completed"
        store.close()


async def test_a_task_with_a_lone_surrogate_is_a_usage_error() -> None:
    with pytest.raises(accord.UsageError, match="lone surrogate"):
        await build_graph().run("bad \udcff task", backend())


def _bytes_of(folder: Path, pattern: str) -> bytes:
    return b"".join(p.read_bytes() for p in folder.glob(pattern))


async def test_store_redact_function_scrubs_the_applications_data_before_storing(
    tmp_path: Path,
) -> None:
    def scrub(text: str) -> str:
        return text.replace("alice@example.com", "<email>")

    async with open_store(tmp_path / "runs.db", redact=scrub) as store:
        result = await build_graph().run("mail alice@example.com", backend(), store=store)
        store.flush()
        raw = _bytes_of(tmp_path, "runs.db*")
        assert b"alice@example.com" not in raw
        assert store.get_run(result.run_id).task == "mail <email>"
        calls = [c for a in store.activations(result.run_id, calls=True) for c in a.calls]
        assert calls and all("alice@" not in m.content for r, _ in calls for m in r.messages)
