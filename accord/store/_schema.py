"""The SQLite run store's schema, its version, and the migrations that reach it.

The version lives in SQLite's ``user_version`` header field, so it can be read from the file's
first 100 bytes before the database is opened. :data:`MIGRATIONS` maps each version to the
statements that take a store from the previous version to it; they run in one transaction.

Caveat: a store whose version is newer than :data:`SCHEMA_VERSION` is never opened for writing.
"""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "TABLES", "HEADER"]

HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""

SCHEMA_VERSION = 2

TABLES = frozenset({"runs", "activations", "events", "blobs", "leases"})
"""Tables every accord store has (from version 1): how a file is told to be one."""

MIGRATIONS: dict[int, tuple[str, ...]] = {
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
            started_at REAL NOT NULL,
            finished_at REAL,
            duration_s REAL,
            usage TEXT,
            max_steps INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 1,
            topology TEXT NOT NULL
        ) WITHOUT ROWID
        """,
        "CREATE INDEX runs_by_start ON runs (started_at)",
        """
        CREATE TABLE activations (
            run_id TEXT NOT NULL,
            node TEXT NOT NULL,
            round INTEGER NOT NULL,
            message TEXT NOT NULL,
            calls TEXT NOT NULL,
            started_at REAL NOT NULL,
            duration_s REAL NOT NULL,
            attempt INTEGER NOT NULL,
            PRIMARY KEY (run_id, node, round)
        )
        """,
        """
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
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
            expires_at REAL NOT NULL
        ) WITHOUT ROWID
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
            asked_at REAL NOT NULL,
            timeout REAL,
            answer TEXT,
            answered_at REAL,
            PRIMARY KEY (run_id, question_id)
        ) WITHOUT ROWID
        """,
    ),
}
