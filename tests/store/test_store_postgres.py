"""PostgresStore on its own: opening checks, schema version, secrets, and the lease across processes.

The semantics shared with SQLite (recording, resume, replay, ``accord runs``) are tested by the
other store tests, which run against both stores (see ``conftest.py``); the crash tests for
PostgreSQL are in ``test_store_postgres_crash.py``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from pathlib import Path

import pytest

if os.environ.get("ACCORD_TEST_POSTGRES") != "required":  # in CI a missing psycopg fails
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'psycopg[binary]'")
import psycopg
import typer
from _pg_server import PASSWORD
from _scenario import ACTIVATIONS, backend, build_graph
from typer.testing import CliRunner

from accord.errors import ConfigError, StoreCorruptError, StoreError, StoreVersionError
from accord.store import SCHEMA_VERSION, open_store, resolve_store
from accord.store._postgres import PostgresStore, masked_url
from accord.store.cli import register


def test_postgres_store_creates_the_tables_at_the_current_version(postgres_url: str) -> None:
    open_store(postgres_url).close()
    open_store(postgres_url).close()  # opening again migrates nothing
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM accord_schema").fetchall() == [(SCHEMA_VERSION,)]
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    assert {"runs", "activations", "events", "blobs", "leases", "accord_schema"} <= tables


def test_postgres_store_refuses_a_newer_schema_and_leaves_the_database(postgres_url: str) -> None:
    open_store(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE accord_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreVersionError) as info:
        PostgresStore(postgres_url)
    assert (info.value.found, info.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM accord_schema").fetchone() == (SCHEMA_VERSION + 1,)


def test_postgres_store_refuses_a_database_of_something_else(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER)")
    with pytest.raises(StoreCorruptError, match="not an accord run store"):
        PostgresStore(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT to_regclass('accord_schema')").fetchone() == (None,)


def test_postgres_stores_opened_at_once_create_the_schema_once(postgres_url: str) -> None:
    async def main() -> list[PostgresStore]:
        return list(await asyncio.gather(*[asyncio.to_thread(PostgresStore, postgres_url)] * 4))

    stores = asyncio.run(main())
    for store in stores:
        store.close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM accord_schema").fetchone() == (1,)


def test_postgres_store_hides_the_password_in_its_location_and_errors(postgres_url: str) -> None:
    store = open_store(postgres_url)
    assert PASSWORD not in store.location and PASSWORD not in repr(store)
    assert store.location == masked_url(postgres_url)
    store.close()
    wrong = postgres_url.replace(PASSWORD, "not-the-" + PASSWORD)
    with pytest.raises(StoreError) as info:
        PostgresStore(wrong)
    shown = "".join(traceback.format_exception(info.value))
    assert "password" in str(info.value) and PASSWORD not in shown
    with pytest.raises(StoreError, match="cannot be reached") as info:
        PostgresStore("postgresql://u:" + PASSWORD + "@127.0.0.1:1/db", timeout_s=2)
    assert PASSWORD not in "".join(traceback.format_exception(info.value))


def test_masked_url_hides_the_password_in_the_user_part_and_the_query() -> None:
    assert masked_url("postgresql://me:pw@h:5/db?sslmode=require") == (
        "postgresql://me:***@h:5/db?sslmode=require"
    )
    assert masked_url("postgres://h/db?password=pw&user=me") == (
        "postgres://h/db?password=***&user=me"
    )
    assert masked_url("postgresql://me@h/db") == "postgresql://me@h/db"


def test_runs_commands_read_a_postgres_store_without_showing_its_password(
    postgres_url: str,
) -> None:
    result = asyncio.run(build_graph().run("task", backend(), store=postgres_url))
    open_store(postgres_url).close()  # flushes nothing: the shared store is flushed at close
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    runner = CliRunner()
    listed = runner.invoke(app, ["runs", "list", "--store", postgres_url])
    assert listed.exit_code == 0, listed.output
    assert result.run_id in listed.output and PASSWORD not in listed.output
    bad = postgres_url.replace(PASSWORD, "wrong" + PASSWORD)
    refused = runner.invoke(app, ["runs", "list", "--store", bad])
    assert refused.exit_code == 1
    assert "StoreError" in refused.output and PASSWORD not in refused.output


async def test_accord_store_env_names_a_postgres_store(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_STORE", postgres_url)
    store = resolve_store(None)
    assert isinstance(store, PostgresStore)
    result = await build_graph().run("task", backend(), durability="sync")
    assert store.get_run(result.run_id).activations == ACTIVATIONS


def test_postgres_url_without_psycopg_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigError, match=r"accord\[postgres\]"):
        open_store("postgresql://me:pw@127.0.0.1:1/db")


def test_postgres_store_with_a_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        PostgresStore(str(tmp_path / "runs.db"))


def test_postgres_store_keeps_the_options_of_its_url(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA team_a")
    url = postgres_url + "?options=-csearch_path%3Dteam_a"
    asyncio.run(build_graph().run("task", backend(), store=url, durability="sync"))
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM team_a.runs").fetchone() == (1,)
        assert conn.execute("SELECT to_regclass('public.runs')").fetchone() == (None,)


def test_serve_reads_runs_from_a_postgres_store_and_makes_no_folder(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accord.serve._store import RunsStore

    monkeypatch.chdir(tmp_path)
    runs = RunsStore(postgres_url)
    result = asyncio.run(build_graph().run("task", backend(), **runs.run_options()))
    found = runs.get(result.run_id)
    assert found is not None and found.status == "completed"
    assert runs.get("nope") is None
    assert list(tmp_path.iterdir()) == []  # no folder named after the URL (and its password)


def test_command_store_keeps_a_postgres_url_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    from accord.store import command_store

    monkeypatch.setenv("ACCORD_STORE", "postgresql://me:pw@db.example:5432/runs")
    assert command_store() == "postgresql://me:pw@db.example:5432/runs"
    monkeypatch.setenv("ACCORD_STORE", "runs/x.db")
    assert command_store() == Path("runs/x.db")
