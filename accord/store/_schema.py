"""The run store's schema, its version, and the migrations that reach it, for SQLite and PostgreSQL.

Both stores hold the same tables with the same columns; the statements are written once, with
three dialect words filled in by :func:`migrations` (SQLite's ``REAL`` is PostgreSQL's
``DOUBLE PRECISION``, an event's sequence number is SQLite's row id or a PostgreSQL identity
column, and SQLite's ``WITHOUT ROWID`` has no PostgreSQL counterpart).

SQLite keeps the version in its ``user_version`` header field, so it can be read from the file's
first 100 bytes before the database is opened; PostgreSQL keeps it in the one-row table
:data:`VERSION_TABLE`. :data:`MIGRATIONS` maps each version to the statements that take a store
from the previous version to it; they run in one transaction.

Caveat: a store whose version is newer than :data:`SCHEMA_VERSION` is never opened for writing.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "SCHEMA_VERSION",
    "MIGRATIONS",
    "TABLES",
    "HEADER",
    "VERSION_TABLE",
    "Dialect",
    "migrations",
]

HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""

SCHEMA_VERSION = 2

TABLES = frozenset({"runs", "activations", "events", "blobs", "leases"})
"""Tables every accord store has (from version 1): how a file is told to be one."""

VERSION_TABLE = "accord_schema"
"""PostgreSQL: the table holding the store's schema version (one row)."""

Dialect = Literal["sqlite", "postgresql"]

_WORDS: dict[str, dict[str, str]] = {
    "sqlite": {"real": "REAL", "seq": "INTEGER PRIMARY KEY", "without_rowid": " WITHOUT ROWID"},
    "postgresql": {
        "real": "DOUBLE PRECISION",
        "seq": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "without_rowid": "",
    },
}

_STATEMENTS: dict[int, tuple[str, ...]] = {
    1: (
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            graph TEXT NOT NULL,
            structure_hash TEXT NOT NULL,
            graph_source TEXT,
            task TEXT NOT NULL,
            status TEXT NOT NULL,
            stop_reason TEXT,
            started_at {real} NOT NULL,
            finished_at {real},
            duration_s {real},
            usage TEXT,
            max_steps INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 1,
            topology TEXT NOT NULL
        ){without_rowid}
        """,
        "CREATE INDEX runs_by_start ON runs (started_at)",
        """
        CREATE TABLE activations (
            run_id TEXT NOT NULL,
            node TEXT NOT NULL,
            round INTEGER NOT NULL,
            message TEXT NOT NULL,
            calls TEXT NOT NULL,
            started_at {real} NOT NULL,
            duration_s {real} NOT NULL,
            attempt INTEGER NOT NULL,
            PRIMARY KEY (run_id, node, round)
        )
        """,
        """
        CREATE TABLE events (
            seq {seq},
            run_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            data TEXT NOT NULL
        )
        """,
        "CREATE INDEX events_by_run ON events (run_id, seq)",
        "CREATE TABLE blobs (hash TEXT PRIMARY KEY, text TEXT NOT NULL)",
        """
        CREATE TABLE leases (
            run_id TEXT PRIMARY KEY,
            token TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            proc_start TEXT NOT NULL,
            expires_at {real} NOT NULL
        ){without_rowid}
        """,
    ),
    2: (
        # questions runs asked a person (ctx.ask, Human nodes); answer is JSON, NULL while pending
        """
        CREATE TABLE questions (
            run_id TEXT NOT NULL,
            question_id TEXT NOT NULL,
            node TEXT NOT NULL,
            round INTEGER NOT NULL,
            question TEXT NOT NULL,
            answer_schema TEXT NOT NULL,
            asked_at {real} NOT NULL,
            timeout {real},
            answer TEXT,
            answered_at {real},
            PRIMARY KEY (run_id, question_id)
        ){without_rowid}
        """,
    ),
}


def migrations(dialect: Dialect) -> dict[int, tuple[str, ...]]:
    """Each version's statements in ``dialect`` (the same tables and columns in both)."""
    words = _WORDS[dialect]
    return {v: tuple(s.format(**words) for s in stmts) for v, stmts in _STATEMENTS.items()}


MIGRATIONS: dict[int, tuple[str, ...]] = migrations("sqlite")
"""SQLite's statements per version (see :func:`migrations` for PostgreSQL's)."""
