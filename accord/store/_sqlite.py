"""SQLiteStore: the default run store, one SQLite file in WAL mode, standard library only.

Opening a store checks the file before anything can change it: the 16-byte header (a file that
is not an SQLite database raises :class:`~accord.errors.StoreCorruptError`), the schema version in
the header and again through a read-only connection (newer than this accord:
:class:`~accord.errors.StoreVersionError`), and ``PRAGMA quick_check``. Only then is the file
opened for writing, switched to WAL and migrated. Every statement is parameterised.

A store is a resource: ``store.close()`` (or leaving ``with``/``async with``) writes what its
writer thread holds, stops that thread and closes the file; a closed store is dropped from every
process-wide cache and refuses further use.

Caveat: with ``synchronous="NORMAL"`` (the default) a committed write survives the process being
killed at any moment; surviving an OS crash or power loss needs ``synchronous="FULL"``.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from accord import _crash
from accord.errors import (
    ConfigError,
    RunBusyError,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
)
from accord.store._base import Owner, RunRecord, WriteBatch
from accord.store._lifecycle import StoreLifecycle
from accord.store._questions import QuestionTable
from accord.store._schema import HEADER, MIGRATIONS, SCHEMA_VERSION, TABLES
from accord.store._sqlite_read import SQLiteReads

__all__ = ["SQLiteStore"]

_SYNC = {"NORMAL": "PRAGMA synchronous=NORMAL", "FULL": "PRAGMA synchronous=FULL"}
_QUICK_CHECK_LIMIT = 256 * 1024 * 1024
_WRITABLE = "Point ACCORD_STORE (or store=) at a file in a writable folder, or run without a store."


class SQLiteStore(StoreLifecycle, SQLiteReads, QuestionTable):
    """A run store in one SQLite file (see module docstring).

    Args:
        path: the database file; created (with its folder) when missing.
        synchronous: ``"NORMAL"`` or ``"FULL"`` (see the caveat above).
        timeout_s: how long a write waits for another process's transaction.
        redact: the application's own scrubber, applied to every text (task, messages, prompts,
            replies) before it is stored. A resume then sends the scrubbed texts.

    Raises:
        StoreCorruptError: the file is not an SQLite database, not an accord store, or damaged.
        StoreVersionError: the store was written by a newer accord.
        StoreError: the path is a folder, its parent is a file, or it cannot be written.
    """

    closed: bool = False

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        timeout_s: float = 30.0,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        if synchronous not in _SYNC:
            raise ConfigError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}.")
        if redact is not None and not callable(redact):
            raise ConfigError("redact= takes a function from text to text (or None).")
        self.path = Path(path).expanduser().absolute()
        self.location = str(self.path)
        self.timeout_s = timeout_s
        self.redact = redact
        self._lock = threading.RLock()
        self._check_path()
        if self.path.exists() and self.path.stat().st_size > 0:
            self._check_existing()
        with self._errors():
            self._conn = sqlite3.connect(
                self.location, timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute(_SYNC[synchronous])
                self._migrate()
            except BaseException:
                self._conn.close()
                raise

    # ---------------------------------------------------------------- lifecycle

    def _settle(self) -> None:
        """Before a read: wait for this process's writers of this file (see _recorder)."""
        from accord.store import _recorder

        if _recorder._writers:
            _recorder.settle(self)

    def _check_open(self) -> None:
        if self.closed:
            raise StoreError(
                f"the run store {self.location} is closed. Open it again with "
                "accord.open_store(path)."
            )

    # ---------------------------------------------------------------- opening

    def _check_path(self) -> None:
        path = self.path
        if path.is_dir():
            raise StoreError(
                f"the run store path {self.location} is a folder. Give a file path, such as "
                f"{self.location}/runs.db."
            )
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise StoreError(
                        f"cannot create the run store {self.location}: {parent} is a file, not a "
                        "folder. Choose a path whose folders are folders (or move that file)."
                    )
                break
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder of the run store {self.location} ({exc.strerror}). "
                + _WRITABLE
            ) from exc

    def _check_existing(self) -> None:
        with open(self.path, "rb") as f:
            head = f.read(100)
        if len(head) < 100 or not head.startswith(HEADER):
            raise StoreCorruptError(
                f"{self.location} is not an accord run store: it is not an SQLite database. "
                "Point ACCORD_STORE (or store=) at another file; this one was not changed.",
                path=self.location,
            )
        self._check_version(int.from_bytes(head[60:64], "big"))
        uri = f"file:{urllib.parse.quote(self.location)}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=self.timeout_s)
            try:
                self._check_version(conn.execute("PRAGMA user_version").fetchone()[0])
                tables = {
                    r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
                if self.path.stat().st_size <= _QUICK_CHECK_LIMIT:
                    verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
                    if verdict != "ok":
                        raise sqlite3.DatabaseError(f"quick_check: {verdict}")
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise StoreCorruptError(
                f"the run store {self.location} is damaged ({exc}). It was not changed; restore "
                "it from a copy or point ACCORD_STORE at a new file.",
                path=self.location,
            ) from exc
        if tables and not TABLES <= tables:
            raise StoreCorruptError(
                f"{self.location} is an SQLite database but not an accord run store (its tables: "
                f"{', '.join(sorted(tables))}). It was not changed; point ACCORD_STORE elsewhere.",
                path=self.location,
            )

    def _check_version(self, found: int) -> None:
        if found > SCHEMA_VERSION:
            raise StoreVersionError(
                f"the run store {self.location} has schema version {found}, but this accord "
                f"supports up to version {SCHEMA_VERSION}. Upgrade accord to read it; the file "
                "was not changed.",
                found=found,
                supported=SCHEMA_VERSION,
            )

    def _migrate(self) -> None:
        conn = self._conn
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                self._check_version(version)
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[target]:
                        conn.execute(statement)
                # written even when unchanged: a store that cannot be written fails here, at
                # open, not at a run's first record
                conn.execute(f"PRAGMA user_version = {int(SCHEMA_VERSION)}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.ProgrammingError as exc:
            if self.closed:
                raise StoreError(
                    f"the run store {self.location} is closed. Open it again with "
                    "accord.open_store(path)."
                ) from exc
            raise StoreError(f"the run store {self.location} failed: {exc}") from exc
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise StoreError(
                    f"the run store {self.location} cannot be written ({exc.strerror}). "
                    + _WRITABLE
                ) from exc
            raise StoreError(f"the run store {self.location} failed: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            text = str(exc)
            if "readonly" in text or "read-only" in text or "unable to open" in text:
                raise StoreError(
                    f"the run store {self.location} cannot be written ({text}). " + _WRITABLE
                ) from exc
            if any(w in text for w in ("malformed", "not a database", "corrupt")):
                raise StoreCorruptError(
                    f"the run store {self.location} is damaged ({text}). Restore it from a copy "
                    "or point ACCORD_STORE at a new file.",
                    path=self.location,
                ) from exc
            if "locked" in text or "busy" in text:
                raise StoreError(
                    f"the run store {self.location} stayed locked by another process for "
                    f"{self.timeout_s} s ({text}). Retry, or give each process its own store."
                ) from exc
            raise StoreError(f"the run store {self.location} failed: {text}") from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._check_open()
        with self._lock, self._errors():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ---------------------------------------------------------------- writing

    def write(self, batch: WriteBatch) -> None:
        """Write ``batch`` in one transaction (rows already present are left as they are)."""
        with self._transaction() as conn:
            if batch.blobs:
                conn.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?)", batch.blobs)
            ending = {(end.run_id, end.token): end for end in batch.ends}
            for run, owner in batch.runs:
                end = ending.pop((run.run_id, owner.token), None)
                conn.execute(
                    "INSERT OR IGNORE INTO runs (run_id, graph, structure_hash, graph_source, "
                    "task, status, stop_reason, started_at, finished_at, duration_s, usage, "
                    "max_steps, topology) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run.run_id,
                        run.graph,
                        run.structure_hash,
                        run.graph_source,
                        run.task,
                        "running" if end is None else end.status,
                        None if end is None else end.stop_reason,
                        run.started_at,
                        None if end is None else end.finished_at,
                        None if end is None else end.duration_s,
                        None if end is None else end.usage,
                        run.max_steps,
                        run.topology,
                    ),
                )
                if end is not None:
                    continue  # started and ended in this transaction: no lease to take
                conn.execute(
                    "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        run.run_id,
                        owner.token,
                        owner.host,
                        owner.pid,
                        owner.proc_start,
                        owner.expires_at,
                    ),
                )
            insert = "INSERT OR IGNORE INTO activations VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            if _crash.ARMED:
                for a in batch.activations:
                    conn.execute(insert, _activation_values(a))
                    _crash.crash_point("mid_store_transaction", node=a.node, round=a.round)
            elif batch.activations:
                conn.executemany(insert, map(_activation_values, batch.activations))
            if batch.events:
                conn.executemany(
                    "INSERT INTO events (run_id, attempt, data) VALUES (?, ?, ?)",
                    [(e.run_id, e.attempt, e.data) for e in batch.events],
                )
            for run_id, token, expires_at in batch.renew:
                conn.execute(
                    "UPDATE leases SET expires_at = ? WHERE run_id = ? AND token = ?",
                    (expires_at, run_id, token),
                )
            for end in ending.values():
                conn.execute(
                    "UPDATE runs SET status = ?, stop_reason = ?, finished_at = ?, "
                    "duration_s = ?, usage = ? WHERE run_id = ?",
                    (
                        end.status,
                        end.stop_reason,
                        end.finished_at,
                        end.duration_s,
                        end.usage,
                        end.run_id,
                    ),
                )
                conn.execute(
                    "DELETE FROM leases WHERE run_id = ? AND token = ?", (end.run_id, end.token)
                )
        if _crash.ARMED:
            for a in batch.activations:
                _crash.crash_point("after_store_commit", node=a.node, round=a.round)

    def begin_attempt(self, run_id: str, owner: Owner) -> RunRecord:
        """Take the run's lease for ``owner`` and count one more attempt (see RunStore)."""
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise self._unknown(run_id)
            row = conn.execute(
                "SELECT token, host, pid, proc_start, expires_at FROM leases WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            if row is not None and row[0] != owner.token:
                holder = Owner(*row)
                if holder.alive(time.time()):
                    raise RunBusyError(
                        f"run {run_id!r} is being executed by another process (pid {holder.pid} "
                        f"on {holder.host}). Wait for it to finish, or stop that process first.",
                        run_id=run_id,
                    )
            conn.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, owner.token, owner.host, owner.pid, owner.proc_start, owner.expires_at),
            )
            conn.execute(
                "UPDATE runs SET status = 'running', stop_reason = NULL, finished_at = NULL, "
                "attempts = attempts + 1 WHERE run_id = ?",
                (run_id,),
            )
        return self.get_run(run_id)

    def release(self, run_id: str, token: str) -> None:
        """Give up the lease held under ``token``."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM leases WHERE run_id = ? AND token = ?", (run_id, token))

    def __repr__(self) -> str:
        return f"SQLiteStore({self.location!r})"


def _activation_values(a: Any) -> tuple[Any, ...]:
    return (
        a.run_id,
        a.node,
        a.round,
        a.message,
        a.calls,
        a.started_at,
        a.duration_s,
        a.attempt,
    )
