"""SQLiteStore on its own: opening checks, schema version, hostile records and filters, idempotence."""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import sqlite3
from pathlib import Path

import pytest
from _scenario import ACTIVATIONS, backend, build_graph

from accord.errors import (
    InvalidFilterError,
    StoreCorruptError,
    StoreDecodeError,
    StoreVersionError,
)
from accord.store import SCHEMA_VERSION, SQLiteStore, StoredPayload
from accord.store._base import ActivationRow, WriteBatch


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _recorded(db: Path, run_id: str = "r1") -> SQLiteStore:
    store = SQLiteStore(db)
    result = asyncio.run(
        build_graph().run("task", backend(), run_id=run_id, store=store, durability="sync")
    )
    assert result.status == "completed"
    return store


def test_sqlite_store_creates_a_wal_database_at_the_current_version(db: Path) -> None:
    SQLiteStore(db).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "activations", "events", "blobs", "leases"} <= tables


def test_sqlite_store_refuses_a_file_that_is_not_a_database_and_leaves_it(db: Path) -> None:
    db.write_bytes(b"these are my notes, not a database\n" * 20)
    before = _digest(db)
    with pytest.raises(StoreCorruptError, match="not an SQLite database") as info:
        SQLiteStore(db)
    assert info.value.path == str(db)
    assert _digest(db) == before


def test_sqlite_store_refuses_a_newer_schema_and_leaves_the_file(db: Path) -> None:
    SQLiteStore(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = _digest(db)
    with pytest.raises(StoreVersionError) as info:
        SQLiteStore(db)
    assert (info.value.found, info.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert f"version {SCHEMA_VERSION + 1}" in str(info.value)
    assert _digest(db) == before


def test_sqlite_store_refuses_a_corrupt_file_and_leaves_it(db: Path) -> None:
    _recorded(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(db.read_bytes())
    assert len(data) >= 3 * page_size
    data[page_size : 3 * page_size] = b"\xa5" * (2 * page_size)  # pages 2 and 3: garbage
    db.write_bytes(bytes(data))
    before = _digest(db)
    with pytest.raises(StoreCorruptError, match="damaged") as info:
        SQLiteStore(db)
    assert info.value.path == str(db)
    assert _digest(db) == before


def test_sqlite_store_refuses_another_applications_database(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    before = _digest(db)
    with pytest.raises(StoreCorruptError, match="not an accord run store"):
        SQLiteStore(db)
    assert _digest(db) == before


def test_sqlite_store_never_unpickles_a_binary_record(db: Path, tmp_path: Path) -> None:
    store = _recorded(db)
    canary = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (canary.write_text, ("owned",))

    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE activations SET message = ? WHERE node = 'a'", (pickle.dumps(Exploit()),)
        )
    with pytest.raises(StoreDecodeError, match="never unpickles"):
        store.activations("r1")
    assert not canary.exists()


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "NoSuchPayload"])
def test_sqlite_store_reads_an_unregistered_payload_kind_as_data_without_importing(
    db: Path, kind: str, tmp_path: Path
) -> None:
    store = _recorded(db)
    canary = tmp_path / "x"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE activations SET message = json_set(message, '$.payload', json(?)) "
            "WHERE node = 'critic' AND round = 0",
            (f'{{"kind": "{kind}", "command": "touch {canary}"}}',),
        )
    found = {(a.node, a.round): a.message.payload for a in store.activations("r1")}
    payload = found[("critic", 0)]
    assert isinstance(payload, StoredPayload)
    assert payload.kind == kind and payload.model_dump() == {"command": f"touch {canary}"}
    assert not canary.exists()


def test_sqlite_store_reports_a_truncated_record_as_corrupt(db: Path) -> None:
    store = _recorded(db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE activations SET message = substr(message, 1, 40) WHERE node = 'b'")
    with pytest.raises(StoreCorruptError) as info:
        store.activations("r1")
    assert info.value.run_id == "r1"
    assert info.value.record == "activation b/0"


@pytest.mark.parametrize(
    "filters",
    [
        {"a') OR 1=1 --": "x"},
        {"status": {"$where": "1=1"}},
        {"status": {"$regex": ".*"}},
        {"started_at": "yesterday"},
        {"status": {"$in": "completed"}},
    ],
)
def test_sqlite_store_list_filter_outside_the_allow_list_raises(
    db: Path, filters: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _recorded(db)
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    with pytest.raises(InvalidFilterError):
        store.list_runs(filters)
    assert statements == []


def test_sqlite_store_list_filters_by_status_graph_and_time(db: Path) -> None:
    store = _recorded(db, "r1")
    asyncio.run(build_graph().run("t", backend(), run_id="r2", store=store, durability="async"))
    assert {r.run_id for r in store.list_runs()} == {"r1", "r2"}
    assert [r.run_id for r in store.list_runs({"status": "failed"})] == []
    assert (
        len(store.list_runs({"status": {"$in": ["completed", "failed"]}, "graph": "scenario"})) == 2
    )
    first = store.get_run("r1").started_at
    assert [r.run_id for r in store.list_runs({"started_at": {"$gt": first}})] == ["r2"]
    assert len(store.list_runs(limit=1)) == 1


def test_sqlite_store_writing_an_activation_twice_stores_it_once(db: Path) -> None:
    store = _recorded(db)
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT * FROM activations WHERE node = 'a'").fetchone()
        total = conn.execute("SELECT count(*) FROM activations").fetchone()[0]
    duplicate = ActivationRow(*row)
    store.write(WriteBatch(activations=[duplicate]))
    store.write(WriteBatch(activations=[duplicate]))
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM activations").fetchone()[0] == total
    assert total == ACTIVATIONS
    assert len(store.activations("r1")) == ACTIVATIONS


def test_sqlite_store_reports_a_request_whose_base_loops_as_corrupt(db: Path) -> None:
    store = _recorded(db)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE activations SET calls = json_set(calls, '$[0].request.base', "
            "json('[\"reviser\", 2, 0]')) WHERE node = 'reviser' AND round = 2"
        )
    assert len(store.activations("r1")) == ACTIVATIONS  # messages alone still load
    with pytest.raises(StoreCorruptError, match="model calls are damaged") as info:
        store.activations("r1", calls=True)
    assert info.value.record == "activation reviser/2"
