"""Recording and resuming runs: what ``Graph.run`` and ``Graph.resume`` ask of the store.

The library records a run only when it has a store: ``store=`` (a path, a ``postgresql://`` URL or
a store), else the one set with ``accord.configure(store=...)``, else ``ACCORD_STORE``; otherwise
nothing is recorded. A ``postgresql://`` URL names a :class:`~accord.store._postgres.PostgresStore`
(several machines can share it); anything else is the path of an SQLite file.
Durability comes from ``durability=``, then ``ACCORD_DURABILITY``, then ``"async"``. Stores named
by a path are opened once per process and shared; a store the user closes leaves that cache.

``Graph.run`` builds a :class:`~accord.store._recorder.Recorder` with :func:`begin_run`, hands it
to the scheduler, and lets :func:`drive` record how the run ended. Resume
(:func:`begin_resume`) loads the run's finished activations into an
:class:`~accord.runtime.ActivationCache`: ``Graph.resume`` executes the graph again with the same
run id and task, cached activations return their stored message without a model call,
activations that were in flight run again, and because transcripts are deterministic given the
outputs, the result equals an uninterrupted run's. The store never sees the graph itself: it gets
the graph's name, structure hash, origin and drawing.

Caveat: a resume is refused when the graph's structure hash differs from the recorded one
(``ConfigError``) and when another live process holds the run's lease (``RunBusyError``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from accord._ids import new_id
from accord.errors import ConfigError, RunError, StoreError
from accord.messages import Usage
from accord.runtime import ActivationCache, RunResult
from accord.store._base import Owner, RunRecord, RunRow, RunStore
from accord.store._codec import StoredPayload, blob_hash
from accord.store._postgres import PostgresStore, is_postgres_url
from accord.store._questions import QuestionTable, give_answers
from accord.store._recorder import Durability, Recorder
from accord.store._sqlite import SQLiteStore

__all__ = [
    "DEFAULT_STORE",
    "resolve_durability",
    "open_store",
    "shared_store",
    "resolve_store",
    "command_store",
    "begin_run",
    "begin_resume",
    "drive",
]

DEFAULT_STORE = Path(".accord") / "runs.db"
_MODES = ("off", "async", "sync")


def resolve_durability(value: str | None) -> Durability:
    """The durability mode: ``value``, else ``ACCORD_DURABILITY``, else ``"async"``.

    Raises:
        ConfigError: not one of "off", "async", "sync".
    """
    mode = value or os.environ.get("ACCORD_DURABILITY") or "async"
    if mode not in _MODES:
        source = "durability=" if value else "ACCORD_DURABILITY="
        raise ConfigError(
            f"{source}{mode!r} is not a durability mode; use 'off' (memory only), 'async' "
            "(batched writes, the default) or 'sync' (commit before delivering)."
        )
    return mode  # type: ignore[return-value]


def open_store(
    path: str | os.PathLike[str] | None = None,
    *,
    redact: Callable[[str], str] | None = None,
    synchronous: Any = "NORMAL",
) -> SQLiteStore | PostgresStore:
    """Open the run store at ``path`` (default ``ACCORD_STORE``, else ``./.accord/runs.db``): an
    SQLite file, or a PostgreSQL database for a ``postgresql://`` URL.

    The store is yours: close it with ``store.close()``, or use it as a context manager
    (``with`` / ``async with accord.open_store(path) as store:``), which writes what its writer
    holds, stops the writer thread and closes the file.

    Args:
        path: the database file (created with its folders when missing), or a
            ``postgresql://user:password@host:port/database`` URL (the database must exist).
        redact: a function applied to every text before it is stored (see ``SQLiteStore``).
        synchronous: ``"NORMAL"`` (the default) or ``"FULL"`` (SQLite only).

    Raises:
        StoreError: the path cannot hold a store (a folder, a parent that is a file, read-only),
            or the PostgreSQL server cannot be reached.
        StoreCorruptError, StoreVersionError: the store cannot be used (it is not changed).
        ConfigError: a PostgreSQL URL without psycopg installed.
    """
    raw = path if path is not None else os.environ.get("ACCORD_STORE") or DEFAULT_STORE
    if is_postgres_url(raw):
        return PostgresStore(str(raw), redact=redact)
    return SQLiteStore(Path(raw), redact=redact, synchronous=synchronous)


_stores: dict[str, SQLiteStore | PostgresStore] = {}
_stores_lock = threading.Lock()


def shared_store(store: RunStore | str | os.PathLike[str] | None = None) -> RunStore:
    """``store`` itself, or the store at a path or ``postgresql://`` URL, opened once per process
    and shared (None: ``ACCORD_STORE``, else ``./.accord/runs.db``).

    Raises:
        StoreError: ``store`` is a closed store, or the path cannot hold a store.
    """
    if store is not None and not isinstance(store, str | os.PathLike):
        if getattr(store, "closed", False):
            raise StoreError(
                f"the run store {store.location} is closed. Open it again with "
                "accord.open_store(path), or pass the path."
            )
        return store
    raw = store if store is not None else os.environ.get("ACCORD_STORE") or DEFAULT_STORE
    url = is_postgres_url(raw)
    key = str(raw) if url else str(Path(raw).expanduser().absolute())
    with _stores_lock:
        found = _stores.get(key)
        if found is None or found.closed:
            found = _stores[key] = PostgresStore(key) if url else SQLiteStore(key)
        return found


def forget(store: RunStore) -> None:
    """Drop a closed store from the cache of :func:`shared_store`."""
    with _stores_lock:
        for key, found in list(_stores.items()):
            if found is store:
                del _stores[key]


def resolve_store(store: RunStore | str | os.PathLike[str] | None) -> RunStore | None:
    """The store a run records into (see module docstring); None: nothing is recorded."""
    if store is None:
        from accord._config import configured_store

        store = configured_store()
        if store is None:
            return None
    return shared_store(store)


def command_store() -> Path | str:
    """The store the ``accord`` command records into and reads: ``ACCORD_STORE`` (a path or a
    ``postgresql://`` URL), else ``./.accord/runs.db``."""
    raw = os.environ.get("ACCORD_STORE") or DEFAULT_STORE
    return raw if is_postgres_url(raw) else Path(raw)


def begin_run(
    target: RunStore,
    mode: Durability,
    *,
    run_id: str,
    given_run_id: bool,
    graph: str,
    structure_hash: str,
    origin: str | None,
    task: str,
    max_steps: int,
    topology: str,
) -> Recorder:
    """The recorder of a new run (called on the event loop that will execute it).

    Raises:
        ConfigError: ``run_id`` was given and the store already holds a run with that id.
    """
    if given_run_id and target.has_run(run_id):
        raise ConfigError(
            f"run {run_id!r} is already in the run store {target.location}. Resume it with "
            f"graph.resume({run_id!r}), or give the new run another run_id."
        )
    row = RunRow(
        run_id=run_id,
        graph=graph,
        structure_hash=structure_hash,
        graph_source=origin,
        task=task,
        started_at=time.time(),
        max_steps=max_steps,
        topology=blob_hash(topology),
    )
    scrub = getattr(target, "redact", None)
    return Recorder(target, mode, run_id, 1, Owner.me(new_id(128)), row, topology, scrub=scrub)


def begin_resume(
    target: RunStore,
    run_id: str,
    *,
    graph: str,
    structure_hash: str,
    mode: Durability,
    answers: dict[str, Any] | None = None,
) -> tuple[RunRecord, ActivationCache, Recorder]:
    """Take run ``run_id``'s lease: its record, its finished activations and a recorder.

    ``answers`` (question id: value) are checked against the run's pending questions and
    recorded first; the recorder then holds every recorded answer.

    Raises:
        AnswerError: an answer names no pending question or does not fit its schema (nothing
            is recorded and the run is not touched).
        ConfigError: no such run, the graph's structure differs, or a stored payload's class is
            not defined in this process.
        RunBusyError: another live process holds the run.
    """
    record = target.get_run(run_id)
    if record.structure_hash != structure_hash:
        raise ConfigError(
            f"run {run_id!r} was recorded with graph {record.graph!r} of structure "
            f"{record.structure_hash}, but graph {graph!r} has structure {structure_hash}: its "
            "nodes, edges or bounds differ. Resume the run with the graph that started it."
        )
    for a in target.activations(run_id):  # checked before the run is touched
        payload = a.message.payload
        if isinstance(payload, StoredPayload):
            raise ConfigError(
                f"run {run_id!r} holds messages with payload kind {payload.kind!r}, which no "
                "Payload class of this process defines, so it cannot be resumed here. Import "
                "the module that defines it (the graph's own file) before resuming."
            )
    if answers:
        give_answers(target, run_id, answers)
    owner = Owner.me(new_id(128))
    record = target.begin_attempt(run_id, owner)
    try:
        finished = target.activations(run_id)
        cache = ActivationCache({a.message.id: a.message for a in finished})
        scrub = getattr(target, "redact", None)
        recorder = Recorder(target, mode, run_id, record.attempts, owner, None, scrub=scrub)
        if isinstance(target, QuestionTable):
            recorder.answers = {
                r.question.id: r.answer for r in target.questions(run_id) if not r.pending
            }
    except BaseException:
        target.release(run_id, owner.token)
        raise
    return record, cache, recorder


async def drive(recorder: Recorder, run: Awaitable[RunResult]) -> RunResult:
    """Await ``run`` and record how it ended: completed or stopped, failed (any exception, with
    the partial result's usage) or cancelled.

    Raises:
        StoreError: the run could not be recorded (``err.result`` holds its result).
    """
    try:
        result = await run
    except BaseException as exc:
        partial = getattr(exc, "result", None)
        usage = partial.usage if isinstance(partial, RunResult) else Usage()
        duration = partial.duration_s if isinstance(partial, RunResult) else 0.0
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
            recorder.end("cancelled", "cancelled", usage, duration)
        else:
            recorder.end("failed", str(exc) or type(exc).__name__, usage, duration)
        await recorder.aclose(raise_errors=False)
        if recorder.mode == "sync" and recorder.error is not None:
            try:
                recorder.store.release(recorder.run_id, recorder.owner.token)
            except Exception:  # the original error matters more
                pass
        raise
    recorder.end(result.status, result.stop_reason, result.usage, result.duration_s)
    try:
        await recorder.aclose()
    except RunError as exc:
        exc.result = result
        raise
    return result
