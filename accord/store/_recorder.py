"""Recording a run as it executes: the recorder the scheduler calls, and the background writer.

The scheduler hands each finished activation to :meth:`Recorder.activation` (before its message
is delivered) and every event to :meth:`Recorder.event`.

- ``"sync"``: the activation is encoded and committed there and then (with the events since the
  last commit), so nothing downstream of a message runs before its record is durable.
- ``"async"``: the recorder only appends to a buffer. Every :data:`HAND_OFF_S` seconds (or
  :data:`HAND_OFF_ITEMS` items) the buffer goes to the store's writer thread, which encodes and
  writes what it gets in one transaction. :meth:`Recorder.aclose` commits the rest when the run
  ends, so a run is durable when ``graph.run`` returns: when the writer holds nothing of this run
  it writes the (small) rest itself, which saves two thread hand-overs per run; otherwise it hands
  the rest over and awaits the commit without blocking the event loop.

Caveat: with ``"async"`` an activation that finished less than :data:`HAND_OFF_S` seconds before
the process died may not be stored; a resume runs it again, like an activation in flight. A run
killed within its first :data:`HAND_OFF_S` seconds is not in the store at all (its row goes with
the first hand-over), so it cannot be resumed. A run shorter than that touches no thread: it is
written once, when it ends.
"""

from __future__ import annotations

import asyncio
import atexit
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Literal

from accord.errors import StoreError
from accord.messages import Message
from accord.runtime._node import ActivationContext
from accord.store._base import (
    LEASE_TTL_S,
    ActivationRow,
    EventRow,
    Owner,
    RunEnd,
    RunRow,
    RunStore,
    WriteBatch,
)
from accord.store._codec import BlobTable, Earlier, dumps, encode_calls, redact

__all__ = ["Recorder", "Durability", "flush_all", "HAND_OFF_S", "HAND_OFF_ITEMS"]

Durability = Literal["off", "async", "sync"]

HAND_OFF_S = 0.05
"""With "async", records wait at most this long on the event loop before going to the writer..."""
HAND_OFF_ITEMS = 256
"""... or until this many are waiting."""

_SKIPPED_EVENTS = frozenset({"token", "message", "activation_started"})
"""Not stored: tokens, messages (they have rows), and what an activation's row already says
(``RunStore.events`` rebuilds activation_started/finished from the rows)."""
_EVENT_EXCLUDE = frozenset({"run_id", "kind", "at"})
_RENEW_EVERY_S = LEASE_TTL_S / 4

_tables: weakref.WeakKeyDictionary[RunStore, dict[int, BlobTable]] = weakref.WeakKeyDictionary()


def _blob_table(store: RunStore) -> BlobTable:
    """The blob memory of the calling thread for ``store`` (texts it already wrote there).

    Kept with the store object (weakly), never by ``id()``: a new store that reuses a dead one's
    id must not believe its texts are already written.
    """
    per_thread = _tables.get(store)
    if per_thread is None:
        per_thread = _tables.setdefault(store, {})
    table = per_thread.get(threading.get_ident())
    if table is None:
        table = per_thread[threading.get_ident()] = BlobTable()
    return table


def _encode_event(event: Any) -> str:
    """``[kind, at, {fields}]`` as JSON."""
    return f'["{event.kind}",{event.at!r},{redact(event.model_dump_json(exclude=_EVENT_EXCLUDE))}]'


class _Writer:
    """One thread per store that writes handed-over records in batches (see module docstring)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.blobs = BlobTable()
        self.thread = threading.Thread(target=self._main, name="accord-store-writer", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        q = self.queue
        while True:
            items = [q.get()]
            while len(items) < 64:
                try:
                    items.append(q.get_nowait())
                except queue.Empty:
                    break
            self._write(items)

    def _write(self, items: list[tuple[Any, ...]]) -> None:
        batch = WriteBatch()
        done: list[Callable[[], None]] = []
        recorders: list[Recorder] = []
        for item in items:
            if item[0] == "flush":
                done.append(item[1])
                continue
            rec: Recorder = item[1]
            recorders.append(rec)
            try:
                rec.encode_all(item[2], batch, self.blobs)
            except Exception as exc:  # reported by the run's aclose()
                rec.fail(exc)
        batch.blobs = self.blobs.take()
        if batch:
            try:
                self.store.write(batch)
            except Exception as exc:
                self.blobs.forget()
                for rec in recorders:
                    rec.fail(exc)
        for rec in recorders:
            rec.written += 1
        for callback in done:
            callback()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything handed over so far is written (for code without a loop)."""
        finished = threading.Event()
        self.queue.put(("flush", finished.set))
        return finished.wait(timeout)


_writers: dict[int, _Writer] = {}
_writers_lock = threading.Lock()


def _writer_for(store: RunStore) -> _Writer:
    writer = _writers.get(id(store))
    if writer is None or writer.store is not store:
        with _writers_lock:
            writer = _writers.get(id(store))
            if writer is None or writer.store is not store:
                writer = _writers[id(store)] = _Writer(store)
    return writer


def flush_all(timeout: float = 10.0) -> None:
    """Wait until every writer thread has written what it was given (runs at exit too)."""
    for writer in list(_writers.values()):
        writer.flush(timeout)


atexit.register(flush_all)


class Recorder:
    """Records one attempt of one run into ``store`` (see module docstring).

    Args:
        store: where to write.
        mode: ``"async"`` or ``"sync"``.
        run_id: the run.
        attempt: 1 for a new run, then one more per resume.
        owner: the lease owner this attempt runs as.
        start: the run's row for a new run (written first, with the lease); None on resume.
        topology: the graph's drawing (JSON) that ``start.topology`` refers to.
    """

    def __init__(
        self,
        store: RunStore,
        mode: Durability,
        run_id: str,
        attempt: int,
        owner: Owner,
        start: RunRow | None,
        topology: str = "",
    ) -> None:
        self.store = store
        self.mode = mode
        self.run_id = run_id
        self.attempt = attempt
        self.owner = owner
        self.error: BaseException | None = None
        self.handed = 0
        """Batches handed to the writer (counted on the loop's thread)."""
        self.written = 0
        """Batches the writer finished (counted on the writer's thread)."""
        self._raised = False
        self._renewed_at = time.time()
        self._buffer: list[tuple[Any, ...]] = []
        self._earlier: Earlier = {}
        """Each agent's last request, which the next one is stored as a delta of."""
        self._timer: asyncio.TimerHandle | None = None
        self._async = mode == "async"
        self._writer: _Writer | None = None
        """The store's writer thread, from the first hand-over on."""
        self._loop = asyncio.get_running_loop() if self._async else None
        if start is not None:
            self._buffer.append(("start", start, topology))
            if self._async:
                self._arm()
            else:
                self._commit()

    # ---------------------------------------------------------------- called by the scheduler

    def activation(self, ctx: ActivationContext, message: Message) -> None:
        """Record a finished activation (sync: committed before this returns)."""
        self._buffer.append(("act", ctx, message, time.time()))
        if not self._async:
            try:
                self._commit()
            except BaseException:
                self._raised = True
                raise
        elif len(self._buffer) >= HAND_OFF_ITEMS:
            self._hand_off()
        elif self._timer is None:
            self._arm()

    def event(self, event: Any) -> None:
        """Record a run event (token and message events are skipped)."""
        kind = event.kind
        if kind in _SKIPPED_EVENTS or (kind == "activation_finished" and not event.cached):
            return
        self._buffer.append(("event", event))
        if self._timer is None and self._async:
            self._arm()

    async def aclose(self, *, raise_errors: bool = True) -> None:
        """Commit what is left of the run; raise the first write error, if any.

        Raises:
            StoreError: a record could not be written.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writer is not None and self.handed != self.written:
            self._hand_off()
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()

            def wake() -> None:
                if not done.done():
                    done.set_result(None)

            self._writer.queue.put(("flush", lambda: loop.call_soon_threadsafe(wake)))
            await done
        elif self._buffer:
            try:
                self._commit()
            except Exception:  # kept in self.error, raised below
                pass
        error = self.error
        if raise_errors and error is not None and not self._raised:
            self._raised = True
            if isinstance(error, StoreError):
                raise error
            raise StoreError(
                f"run {self.run_id!r} could not be recorded in {self.store.location}: {error}"
            ) from error

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc

    # ---------------------------------------------------------------- buffering

    def _arm(self) -> None:
        if self._loop is not None:
            self._timer = self._loop.call_later(HAND_OFF_S, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._hand_off()

    def _hand_off(self) -> None:
        if self._buffer:
            if self._writer is None:
                self._writer = _writer_for(self.store)
            items, self._buffer = self._buffer, []
            self.handed += 1
            self._writer.queue.put(("batch", self, items))

    def _commit(self) -> None:
        """Encode and write the buffer on this thread, in one transaction."""
        items, self._buffer = self._buffer, []
        blobs = _blob_table(self.store)
        batch = WriteBatch()
        try:
            self.encode_all(items, batch, blobs)
            batch.blobs = blobs.take()
            self.store.write(batch)
        except BaseException as exc:
            blobs.forget()
            self.fail(exc)
            raise

    # ---------------------------------------------------------------- encoding

    def encode_all(self, items: list[tuple[Any, ...]], batch: WriteBatch, blobs: BlobTable) -> None:
        """Turn buffered items into rows of ``batch`` (on the writer's thread with "async")."""
        events: list[str] = []
        for item in items:
            kind = item[0]
            if kind == "act":
                self._encode_activation(item, batch, blobs)
            elif kind == "event":
                event = item[1]
                events.append(_encode_event(event))
                if event.kind == "run_finished":
                    u = event.usage
                    batch.ends.append(
                        RunEnd(
                            self.run_id,
                            event.status,
                            redact(event.stop_reason) if event.stop_reason is not None else None,
                            event.at,
                            event.duration_s,
                            dumps([u.requests, u.prompt_tokens, u.completion_tokens, u.cost]),
                            self.owner.token,
                        )
                    )
            else:  # "start"
                _, row, topology = item
                blobs.ref(topology)
                batch.runs.append((row, self.owner))
        if events:
            batch.events.append(EventRow(self.run_id, self.attempt, f"[{','.join(events)}]"))

    def _encode_activation(
        self, item: tuple[Any, ...], batch: WriteBatch, blobs: BlobTable
    ) -> None:
        _, ctx, message, finished_at = item
        batch.activations.append(
            ActivationRow(
                self.run_id,
                ctx.node,
                ctx.round,
                redact(message.model_dump_json()),
                encode_calls(ctx.calls or (), blobs, ctx.node, ctx.round, self._earlier),
                ctx.started_at,
                finished_at - ctx.started_at,
                self.attempt,
            )
        )
        if finished_at - self._renewed_at > _RENEW_EVERY_S:
            self._renewed_at = finished_at
            batch.renew.append((self.run_id, self.owner.token, finished_at + LEASE_TTL_S))
