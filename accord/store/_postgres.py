"""PostgresStore: the run store in a PostgreSQL database, shared by processes on several machines.

``store="postgresql://user:password@host:5432/db"`` (or ``ACCORD_STORE=postgresql://...``) records
runs into PostgreSQL with the schema, the versioned migrations (:mod:`accord.store._schema`), the
codec and the queries of the SQLite store (:class:`~accord.store._sqlite_read.SQLiteReads`): leases,
resume, replay, ``accord runs ...`` and traces work the same. Needs ``pip install
"accord[postgres]"`` (psycopg 3), imported when a store is opened.

Opening a store checks the database before anything changes it: a database holding some of the
store's tables but no schema version is not an accord store (:class:`~accord.errors.StoreCorruptError`),
a newer schema version is refused (:class:`~accord.errors.StoreVersionError`). Migrations run in one
transaction under an advisory lock, so processes opening a new database at once create it once.
Taking a lease locks the run's row (``SELECT ... FOR UPDATE``): of two processes resuming one run,
exactly one gets it. Every statement is parameterised.

Caveat: the URL's password is never shown: :attr:`PostgresStore.location`, errors and logs carry
the URL with ``***`` in its place. One connection per store, used under a lock (like SQLite's).
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

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
from accord.store._schema import SCHEMA_VERSION, TABLES, VERSION_TABLE, migrations
from accord.store._sqlite_read import SQLiteReads

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore", "is_postgres_url", "masked_url"]

SCHEMES = ("postgresql://", "postgres://")
_LOCK_KEY = 0x6163636F7264  # "accord": the advisory lock migrations take
_INSTALL = 'The PostgreSQL run store needs psycopg 3: pip install "accord[postgres]".'


def is_postgres_url(value: object) -> bool:
    """Whether ``value`` is a ``postgresql://`` (or ``postgres://``) URL."""
    return isinstance(value, str) and value.startswith(SCHEMES)


def masked_url(url: str) -> str:
    """``url`` with its password (and any ``password=`` query parameter) replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hosts = netloc.rpartition("@")
            user, sep, _ = userinfo.partition(":")
            netloc = f"{user}:***@{hosts}" if sep else f"{user}@{hosts}"
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        shown = [(k, "***" if k.lower() == "password" else v) for k, v in query]
        return urllib.parse.urlunsplit(
            (parts.scheme, netloc, parts.path, urllib.parse.urlencode(shown, safe="*"), "")
        )
    except ValueError:
        return f"{url.split('://', 1)[0]}://***"


def _secrets(url: str) -> list[str]:
    """The password of ``url`` in the forms an error message might quote it."""
    parts = urllib.parse.urlsplit(url)
    found = [parts.password or ""]
    found += [v for k, v in urllib.parse.parse_qsl(parts.query) if k.lower() == "password"]
    found += [urllib.parse.quote(s, safe="") for s in found]
    return sorted({s for s in found if s}, key=len, reverse=True)


class PostgresStore(StoreLifecycle, SQLiteReads, QuestionTable):
    """A run store in a PostgreSQL database (see module docstring).

    Args:
        url: ``postgresql://[user[:password]@]host[:port]/database[?param=value...]``; the
            database must exist (its tables are created on first use).
        timeout_s: how long connecting, and a write waiting for another process's lock, may take.
        redact: the application's own scrubber, applied to every text before it is stored.

    Raises:
        ConfigError: psycopg is not installed, or ``url`` is not a PostgreSQL URL.
        StoreError: the server cannot be reached or refuses the login (password never shown).
        StoreCorruptError: the database holds tables of something that is not an accord store.
        StoreVersionError: the store was written by a newer accord.
    """

    closed: bool = False

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 30.0,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        if not is_postgres_url(url):
            raise ConfigError("a PostgreSQL run store takes a postgresql://... URL.")
        if redact is not None and not callable(redact):
            raise ConfigError("redact= takes a function from text to text (or None).")
        try:
            import psycopg
        except ImportError as exc:
            raise ConfigError(_INSTALL) from exc
        self._psycopg = psycopg
        self._url = url
        self._secrets = _secrets(url)
        self.location = masked_url(url)
        self.timeout_s = timeout_s
        self.redact = redact
        self._lock = threading.RLock()
        with self._errors():
            given = psycopg.conninfo.conninfo_to_dict(url)  # the URL's own options are kept
            options = f"{given.get('options') or ''} -c lock_timeout={int(timeout_s * 1000)}"
            self._conn: Any = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=given.get("connect_timeout") or max(1, int(timeout_s)),
                options=options.strip(),
            )
        try:
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # ---------------------------------------------------------------- lifecycle

    def _settle(self) -> None:
        from accord.store import _recorder

        if _recorder._writers:
            _recorder.settle(self)

    def _check_open(self) -> None:
        if self.closed:
            raise StoreError(
                f"the run store {self.location} is closed. Open it again with "
                "accord.open_store(url)."
            )

    # ---------------------------------------------------------------- SQL

    def _hide(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text.replace(self._url, self.location)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        psycopg = self._psycopg
        try:
            yield
        except psycopg.errors.LockNotAvailable as exc:
            raise StoreError(
                f"the run store {self.location} stayed locked by another process for "
                f"{self.timeout_s} s. Retry, or find the transaction that holds the lock."
            ) from exc
        except psycopg.OperationalError as exc:
            # not chained: a connection error's own text is shown with its password hidden
            text = self._hide(str(exc).strip())
            raise StoreError(
                f"the run store {self.location} cannot be reached or refused the login ({text}). "
                "Check the server, the user, the password and the database of the URL."
            ) from None
        except psycopg.Error as exc:
            if self.closed:
                raise StoreError(
                    f"the run store {self.location} is closed. Open it again with "
                    "accord.open_store(url)."
                ) from exc
            raise StoreError(
                f"the run store {self.location} failed: {self._hide(str(exc).strip())}"
            ) from exc

    @staticmethod
    def _sql(text: str) -> str:
        return text.replace("?", "%s")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Reads shared with SQLite: their ``?`` placeholders become psycopg's ``%s``."""
        self._check_open()
        self._settle()
        with self._lock, self._errors():
            return list(self._conn.execute(sql.replace("?", "%s"), params).fetchall())

    @contextlib.contextmanager
    def _transaction(self, *, pipeline: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """One transaction; ``pipeline``: statements are sent without waiting for each reply
        (one round trip for the whole write, not one per statement)."""
        self._check_open()
        with contextlib.ExitStack() as stack:
            stack.enter_context(self._lock)
            stack.enter_context(self._errors())
            if pipeline:
                stack.enter_context(self._conn.pipeline())
            stack.enter_context(self._conn.transaction())
            yield self._conn

    def _migrate(self) -> None:
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            tables = {
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                )
            }
            if VERSION_TABLE in tables:
                row = conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone()
                version = int(row[0]) if row else 0
            elif tables & TABLES:
                raise StoreCorruptError(
                    f"the database of {self.location} holds tables named like an accord run "
                    f"store's ({', '.join(sorted(tables & TABLES))}) but no schema version: it is "
                    "not an accord run store. It was not changed; use another database or schema.",
                    path=self.location,
                )
            else:
                conn.execute(f"CREATE TABLE {VERSION_TABLE} (version INTEGER NOT NULL)")
                conn.execute(f"INSERT INTO {VERSION_TABLE} VALUES (0)")
                version = 0
            if version > SCHEMA_VERSION:
                raise StoreVersionError(
                    f"the run store {self.location} has schema version {version}, but this accord "
                    f"supports up to version {SCHEMA_VERSION}. Upgrade accord to read it; the "
                    "database was not changed.",
                    found=version,
                    supported=SCHEMA_VERSION,
                )
            steps = migrations("postgresql")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in steps[target]:
                    conn.execute(statement)
            conn.execute(f"UPDATE {VERSION_TABLE} SET version = %s", (SCHEMA_VERSION,))

    # ---------------------------------------------------------------- writing

    def write(self, batch: WriteBatch) -> None:
        """Write ``batch`` in one transaction (rows already present are left as they are)."""
        with self._transaction(pipeline=True) as conn:
            cur = conn.cursor()
            if batch.blobs:
                cur.executemany(
                    "INSERT INTO blobs VALUES (%s, %s) ON CONFLICT DO NOTHING", batch.blobs
                )
            ending = {(end.run_id, end.token): end for end in batch.ends}
            for run, owner in batch.runs:
                end = ending.pop((run.run_id, owner.token), None)
                cur.execute(
                    "INSERT INTO runs (run_id, graph, structure_hash, graph_source, task, status, "
                    "stop_reason, started_at, finished_at, duration_s, usage, max_steps, "
                    "topology) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
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
                if end is None:  # started and ended in this transaction: no lease to take
                    _take_lease(cur, run.run_id, owner)
            insert = (
                "INSERT INTO activations VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING"
            )
            if _crash.ARMED:
                for a in batch.activations:
                    cur.execute(insert, _activation_values(a))
                    _crash.crash_point("mid_store_transaction", node=a.node, round=a.round)
            elif batch.activations:
                cur.executemany(insert, [_activation_values(a) for a in batch.activations])
            if batch.events:
                cur.executemany(
                    "INSERT INTO events (run_id, attempt, data) VALUES (%s, %s, %s)",
                    [(e.run_id, e.attempt, e.data) for e in batch.events],
                )
            for run_id, token, expires_at in batch.renew:
                cur.execute(
                    "UPDATE leases SET expires_at = %s WHERE run_id = %s AND token = %s",
                    (expires_at, run_id, token),
                )
            for end in ending.values():
                cur.execute(
                    "UPDATE runs SET status = %s, stop_reason = %s, finished_at = %s, "
                    "duration_s = %s, usage = %s WHERE run_id = %s",
                    (
                        end.status,
                        end.stop_reason,
                        end.finished_at,
                        end.duration_s,
                        end.usage,
                        end.run_id,
                    ),
                )
                cur.execute(
                    "DELETE FROM leases WHERE run_id = %s AND token = %s", (end.run_id, end.token)
                )
        if _crash.ARMED:
            for a in batch.activations:
                _crash.crash_point("after_store_commit", node=a.node, round=a.round)

    def begin_attempt(self, run_id: str, owner: Owner) -> RunRecord:
        """Take the run's lease for ``owner`` and count one more attempt (see RunStore).

        The run's row is locked first, so two processes taking the lease at once are served one
        after the other: the second sees the first's lease and gets ``RunBusyError``.
        """
        with self._transaction() as conn:
            cur = conn.cursor()
            cur.execute("SELECT 1 FROM runs WHERE run_id = %s FOR UPDATE", (run_id,))
            if cur.fetchone() is None:
                raise self._unknown(run_id)
            cur.execute(
                "SELECT token, host, pid, proc_start, expires_at FROM leases WHERE run_id = %s",
                (run_id,),
            )
            row = cur.fetchone()
            if row is not None and row[0] != owner.token:
                holder = Owner(*row)
                if holder.alive(time.time()):
                    raise RunBusyError(
                        f"run {run_id!r} is being executed by another process (pid {holder.pid} "
                        f"on {holder.host}). Wait for it to finish, or stop that process first.",
                        run_id=run_id,
                    )
            _take_lease(cur, run_id, owner)
            cur.execute(
                "UPDATE runs SET status = 'running', stop_reason = NULL, finished_at = NULL, "
                "attempts = attempts + 1 WHERE run_id = %s",
                (run_id,),
            )
        return self.get_run(run_id)

    def release(self, run_id: str, token: str) -> None:
        """Give up the lease held under ``token``."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM leases WHERE run_id = %s AND token = %s", (run_id, token))

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"


def _take_lease(cur: Any, run_id: str, owner: Owner) -> None:
    cur.execute(
        "INSERT INTO leases VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO UPDATE SET "
        "token = excluded.token, host = excluded.host, pid = excluded.pid, "
        "proc_start = excluded.proc_start, expires_at = excluded.expires_at",
        (run_id, owner.token, owner.host, owner.pid, owner.proc_start, owner.expires_at),
    )


def _activation_values(a: Any) -> tuple[Any, ...]:
    return (a.run_id, a.node, a.round, a.message, a.calls, a.started_at, a.duration_s, a.attempt)
