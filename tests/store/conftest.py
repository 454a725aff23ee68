"""Fixtures for the run-store tests: a store (an SQLite file under ``tmp_path``, or a fresh
PostgreSQL database) and the scenario subprocess.

Every test passes its store explicitly (nothing here touches ``./.accord``): the library records
only into a store it is given. The tests of the store's semantics (:data:`BOTH`) run against both
stores: their ``db`` is a path, then a ``postgresql://`` URL. PostgreSQL comes from a server
started once per session (``_pg_server``), or from ``ACCORD_TEST_POSTGRES_URL`` (a server whose
user may create databases). Without PostgreSQL those tests are skipped, saying why, unless
``ACCORD_TEST_POSTGRES=required`` (set by CI), where they fail.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # `import _scenario` from any layout

BOTH = {
    "test_store_run.py": None,  # every test using ``db`` except SQLITE_ONLY
    "test_store_cli.py": None,
    "test_store_recorder.py": {
        "test_two_resumes_at_once_only_one_proceeds",
        "test_resume_with_durability_off_is_refused",
    },
}
SQLITE_ONLY = {
    # these open the SQLite file itself
    "test_run_with_durability_off_writes_nothing",
    "test_store_never_holds_the_backends_key_but_keeps_the_task_verbatim",
    "test_store_rebuilds_growing_prompts_from_deltas",
    "test_resume_says_which_payload_class_is_missing",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db" not in metafunc.fixturenames:
        return
    module = Path(str(metafunc.definition.fspath)).name
    if module not in BOTH:
        return
    chosen = BOTH[module]
    name = metafunc.definition.originalname
    if name in SQLITE_ONLY or (chosen is not None and name not in chosen):
        return
    metafunc.parametrize("db", ["sqlite", "postgresql"], indirect=True)


class _Missing:
    def __init__(self, reason: str) -> None:
        self.reason = reason


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A PostgreSQL server for the session (or why there is none)."""
    given = os.environ.get("ACCORD_TEST_POSTGRES_URL")
    if given:
        from _pg_server import ExistingServer

        yield ExistingServer(given)
        return
    try:
        import psycopg  # noqa: F401
        from _pg_server import PostgresServer

        server = PostgresServer()
    except Exception as exc:  # no server: the tests say why (or fail in CI)
        yield _Missing(f"no PostgreSQL server for the store tests: {exc}")
        return
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: Any) -> Iterator[str]:
    """The URL of a fresh, empty database; stores opened on it are closed after the test."""
    if isinstance(postgres_server, _Missing):
        if os.environ.get("ACCORD_TEST_POSTGRES") == "required":
            pytest.fail(postgres_server.reason + " (ACCORD_TEST_POSTGRES=required)")
        pytest.skip(
            postgres_server.reason + " (pip install 'psycopg[binary]'; apt-get install postgresql)"
        )
    url = postgres_server.new_database()
    yield url
    from accord.store import _run

    for key, store in list(_run._stores.items()):
        if key == url:
            store.close()


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A new store: a path for a new SQLite file, or (``postgresql``) a new database's URL."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return request.getfixturevalue("postgres_url")
    return tmp_path / "runs.db"
