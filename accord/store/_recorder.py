"""Recording a run as it executes: the recorder the scheduler calls, and the background writer.

The scheduler hands each finished activation to :meth:`Recorder.activation` (before its message
is delivered); ``Graph.run`` tells the recorder how the run ended (:meth:`Recorder.end`) and
closes it (:meth:`Recorder.aclose`). The recorder subscribes to no events, so a run without an
event sink builds none, except the rare ones the store keeps (:meth:`Recorder.event`: retries,
tool calls and their results).

- ``"sync"``: the activation is encoded and committed there and then, so nothing downstream of a
  message runs before its record is durable, and the run's end is committed before ``graph.run``
  returns: **durable when graph.run returns**.
- ``"async"``: the recorder only appends each record to the store's writer queue (a deque; no
  encoding, no lock, no I/O on the event loop). The writer thread wakes on the first record,
  gathers for :data:`HAND_OFF_S` seconds, then encodes everything waiting (from every run on the
  store) and writes it in one transaction. ``graph.run`` returns without waiting for that write. What ``"async"`` guarantees: the records of a run reach the store in
  order, a run's rows are visible to every read through a store of this process as soon as
  ``graph.run`` has returned (reads wait for the writer first), and they are durable once
  ``store.flush()`` or ``store.close()`` returns, or the interpreter exits normally. An activation
  that finished less than :data:`HAND_OFF_S` seconds before the process was killed may be lost (a
  resume runs it again, like an activation in flight); a run killed in its first
  :data:`HAND_OFF_S` seconds may not be in the store at all.

The writer is owned by its store: ``store.close()`` writes what it holds and stops its thread. A
writer whose thread died is never used again: the run that finds it dead fails with a
:class:`~accord.errors.StoreError`, and the next run starts a new writer.
"""

from __future__ import annotations

import atexit
import collections
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from accord.errors import StoreError, UsageError
from accord.messages import Message, Usage
from accord.runtime import ActivationContext, Question
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
from accord.store._codec import BlobTable, Earlier, dumps, encode_calls, encode_message, redact
from accord.store._questions import QuestionTable

__all__ = ["Recorder", "Durability", "flush_all", "settle", "stop_writer", "HAND_OFF_S"]

Durability = Literal["off", "async", "sync"]

_EVENT_EXCLUDE = frozenset({"run_id", "kind", "at"})
"""Fields every stored event has in its row already."""

HAND_OFF_S = 0.05
"""With "async", the writer gathers records for this long before it writes them together."""

_RENEW_EVERY_S = LEASE_TTL_S / 4
_YIELD_EVERY_S = 0.001
"""The writer holds the GIL at most about this long at a time while it encodes (the
interpreter's own switch interval is 5 ms, which an event loop would feel)."""

Scrub = Callable[[str], str]


def _call(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # a closed event loop must not kill the writer
        pass


class _Writer:
    """One thread per store that writes handed-over records in batches (see module docstring).

    Runs append ``(recorder, item)`` pairs to :attr:`items` (a deque: no lock on the event loop).
    The thread wakes on the first item after it was idle, gathers for :data:`HAND_OFF_S` seconds
    (less when someone waits in :meth:`flush`), then encodes and writes everything waiting in one
    transaction.
    """

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.items: collections.deque[tuple[Recorder, tuple[Any, ...]]] = collections.deque()
        self.blobs = BlobTable()
        self.error: BaseException | None = None
        """The last write error, reported by the next run that hands records over."""
        self._wake = threading.Event()
        self._urgent = threading.Event()
        self._waiters: collections.deque[Callable[[], None]] = collections.deque()
        self._stopping = False
        self._busy = False
        self.thread = threading.Thread(target=self._main, name="accord-store-writer", daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def put(self, recorder: Recorder, item: tuple[Any, ...]) -> None:
        """Queue one record (called on the event loop; cheap)."""
        self.items.append((recorder, item))
        if not self._wake.is_set():
            self._wake.set()

    def pending(self) -> bool:
        return bool(self.items) or self._busy

    def _main(self) -> None:
        while True:
            self._wake.wait()
            if not self._stopping:
                self._urgent.wait(HAND_OFF_S)  # gather records, unless someone waits
            self._busy = True
            self._wake.clear()
            self._urgent.clear()
            waiters = [self._waiters.popleft() for _ in range(len(self._waiters))]
            items = [self.items.popleft() for _ in range(len(self.items))]
            try:
                if items:
                    self._write(items)
            except BaseException as exc:  # never die silently: keep serving later runs
                self.error = exc
            finally:
                self._busy = False
            for callback in waiters:
                _call(callback)
            if self._stopping and not self.items:
                return

    def _write(self, items: list[tuple[Recorder, tuple[Any, ...]]]) -> None:
        batch = WriteBatch()
        by_run: dict[int, tuple[Recorder, list[tuple[Any, ...]]]] = {}
        for rec, item in items:
            found = by_run.get(id(rec))
            if found is None:
                by_run[id(rec)] = (rec, [item])
            else:
                found[1].append(item)
        yielded = time.perf_counter()
        for rec, run_items in by_run.values():
            now = time.perf_counter()
            if now - yielded > _YIELD_EVERY_S:  # let a waiting event loop take the GIL
                time.sleep(0)
                yielded = now
            try:
                rec.encode_all(run_items, batch, self.blobs)
            except Exception as exc:  # reported by the run, or by the next one
                rec.fail(exc)
                self.error = exc
        batch.blobs = self.blobs.take()
        if batch:
            try:
                self.store.write(batch)
            except Exception as exc:
                self.blobs.forget()
                self.error = exc
                for rec, _ in by_run.values():
                    rec.fail(exc)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything queued so far is written (False: timed out or dead)."""
        if not self.alive():
            return False
        finished = threading.Event()
        self._waiters.append(finished.set)
        self._urgent.set()
        self._wake.set()
        waited = 0.0
        while not finished.wait(0.2):
            if not self.alive():
                return False
            waited += 0.2
            if timeout is not None and waited >= timeout:
                return False
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then end the thread."""
        if self.alive():
            self._stopping = True
            self._urgent.set()
            self._wake.set()
            self.thread.join(timeout)


_writers: dict[int, _Writer] = {}
_writers_lock = threading.Lock()


def _dead(store: RunStore) -> StoreError:
    return StoreError(
        f"the writer thread of the run store {store.location} had stopped, so this run could not "
        "be recorded completely. The next run starts a new writer; resume this one "
        "(graph.resume) to record the rest."
    )


def _drop(store: RunStore, writer: _Writer) -> None:
    with _writers_lock:
        if _writers.get(id(store)) is writer:
            del _writers[id(store)]


def _writer_for(store: RunStore) -> _Writer:
    """The store's writer; starts one when there is none.

    Raises:
        StoreError: the store's writer thread died (it is dropped: the next run starts another),
            or the store is closed.
    """
    writer = _writers.get(id(store))
    if writer is not None and writer.store is store:
        if writer.alive():
            return writer
        _drop(store, writer)
        raise _dead(store)
    if getattr(store, "closed", False):
        raise StoreError(
            f"the run store {store.location} is closed. Open it again (accord.open_store(path)) "
            "or record into another store."
        )
    with _writers_lock:
        writer = _writers.get(id(store))
        if writer is None or writer.store is not store:
            writer = _writers[id(store)] = _Writer(store)
    return writer


def settle(store: RunStore, timeout: float | None = 60.0) -> None:
    """Wait until every writer writing to ``store``'s location has written what it holds."""
    location = store.location
    for writer in list(_writers.values()):
        if writer.store.location == location and writer.pending():
            writer.flush(timeout)


def take_error(store: RunStore) -> BaseException | None:
    """The last error of ``store``'s writer, cleared."""
    writer = _writers.get(id(store))
    if writer is None or writer.store is not store:
        return None
    error, writer.error = writer.error, None
    return error


def stop_writer(store: RunStore) -> None:
    """Stop ``store``'s writer thread after it has written what it holds (``store.close()``)."""
    with _writers_lock:
        writer = _writers.pop(id(store), None)
    if writer is not None and writer.store is store:
        writer.stop()


def flush_all(timeout: float = 10.0) -> None:
    """Wait until every writer thread has written what it was given (runs at exit too)."""
    for writer in list(_writers.values()):
        if writer.pending():
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
        scrub: the application's function applied to every text before it is stored.
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
        scrub: Scrub | None = None,
    ) -> None:
        self.store = store
        self.mode = mode
        self.run_id = run_id
        self.attempt = attempt
        self.owner = owner
        self.scrub = scrub
        self.error: BaseException | None = None
        self._raised = False
        self._renewed_at = time.time()
        self._buffer: list[tuple[Any, ...]] = []
        """"sync": records not committed yet."""
        self._earlier: Earlier = {}
        """Each agent's last request, which the next one is stored as a delta of."""
        self._async = mode == "async"
        self._writer: _Writer | None = None
        if self._async:
            self._writer = _writer_for(store)  # raises StoreError if it died
            self._take_writer_error()
        self.answers: dict[str, Any] = {}
        """Answers to the run's questions recorded before this attempt (question id: JSON)."""
        if start is not None:
            self._put(("start", start, topology))

    # ---------------------------------------------------------------- questions (InputGate)

    def recorded(self, question_id: str) -> tuple[bool, Any]:
        if question_id in self.answers:
            return True, self.answers[question_id]
        return False, None

    def poll(self, question_id: str) -> tuple[bool, Any]:
        for r in self._questions().questions(self.run_id):
            if r.question.id == question_id and not r.pending:
                self.answers[question_id] = r.answer
                return True, r.answer
        return False, None

    def asked_at(self, question: Question) -> float:
        return self._questions().put_question(question)

    def answered(self, question_id: str, value: Any) -> None:
        self._questions().put_answer(self.run_id, question_id, value)
        self.answers[question_id] = value

    def _questions(self) -> QuestionTable:
        store = self.store
        if not isinstance(store, QuestionTable):
            raise UsageError(
                f"the run store {store.location} keeps no questions: a pause for a person's "
                "answer needs a store that does (accord.open_store(path))."
            )
        return store

    # ---------------------------------------------------------------- called by the scheduler

    def activation(self, ctx: ActivationContext, message: Message) -> None:
        """Record a finished activation (sync: committed before this returns)."""
        writer = self._writer
        if writer is not None:
            writer.put(self, ("act", ctx, message, time.time()))
            return
        self._buffer.append(("act", ctx, message, time.time()))
        try:
            self._commit()
        except BaseException:
            self._raised = True
            raise

    def event(self, event: Any) -> None:
        """Record a rare event (a retry, a tool call or its result) with the activations."""
        self._put(("event", event))

    # ---------------------------------------------------------------- called by Graph.run

    def end(self, status: str, stop_reason: str | None, usage: Usage, duration_s: float) -> None:
        """Record how this attempt ended (written by :meth:`aclose`)."""
        self._put(("end", status, stop_reason, usage, duration_s, time.time()))

    async def aclose(self, *, raise_errors: bool = True) -> None:
        """Write the rest of the run ("sync": committed before this returns; "async": queued
        for the writer, which writes it within :data:`HAND_OFF_S` s); raise the first error.

        Raises:
            StoreError: a record could not be written, or the writer had died.
        """
        writer = self._writer
        if writer is not None:
            if not writer.alive():
                self.fail(_dead(self.store))
                _drop(self.store, writer)
            else:
                self._take_writer_error()
        elif self._buffer:
            try:
                self._commit()
            except Exception as exc:  # kept in self.error, raised below
                self.fail(exc)
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

    def _put(self, item: tuple[Any, ...]) -> None:
        if self._writer is not None:
            self._writer.put(self, item)
        else:
            self._buffer.append(item)
            self._commit()

    def _take_writer_error(self) -> None:
        writer = self._writer
        if writer is not None and writer.error is not None:
            earlier, writer.error = writer.error, None
            self.fail(earlier)

    def _commit(self) -> None:
        """Encode and write the buffer on this thread, in one transaction."""
        items, self._buffer = self._buffer, []
        blobs = BlobTable()
        batch = WriteBatch()
        try:
            self.encode_all(items, batch, blobs)
            batch.blobs = blobs.take()
            self.store.write(batch)
        except BaseException as exc:
            self.fail(exc)
            raise

    # ---------------------------------------------------------------- encoding

    def encode_all(self, items: list[tuple[Any, ...]], batch: WriteBatch, blobs: BlobTable) -> None:
        """Turn buffered items into rows of ``batch`` (on the writer's thread with "async")."""
        events: list[str] = []
        scrub = self.scrub
        for item in items:
            kind = item[0]
            if kind == "act":
                self._encode_activation(item, batch, blobs)
            elif kind == "end":
                _, status, reason, u, duration, at = item
                reason = redact(reason) if reason is not None else None
                usage = [u.requests, u.prompt_tokens, u.completion_tokens, u.cost]
                batch.ends.append(
                    RunEnd(
                        self.run_id, status, reason, at, duration, dumps(usage), self.owner.token
                    )
                )
                fields = {
                    "status": status,
                    "stop_reason": reason,
                    "usage": u.model_dump(mode="json"),
                    "duration_s": duration,
                }
                events.append(dumps(["run_finished", at, fields]))
            elif kind == "event":
                event = item[1]
                fields = event.model_dump(mode="json", exclude=_EVENT_EXCLUDE)
                if scrub is not None:
                    fields = {k: scrub(v) if isinstance(v, str) else v for k, v in fields.items()}
                events.append(dumps([event.kind, event.at, fields]))
            else:  # "start"
                _, row, topology = item
                blobs.ref(topology, scrub)
                if scrub is not None:
                    row = RunRow(**{**_row_dict(row), "task": scrub(row.task)})
                batch.runs.append((row, self.owner))
                events.append(dumps(["run_started", row.started_at, {"graph": row.graph}]))
        if events:
            batch.events.append(EventRow(self.run_id, self.attempt, f"[{','.join(events)}]"))

    def _encode_activation(
        self, item: tuple[Any, ...], batch: WriteBatch, blobs: BlobTable
    ) -> None:
        _, ctx, message, finished_at = item
        batch.activations.append(self._activation_row(ctx, message, finished_at, blobs))
        if finished_at - self._renewed_at > _RENEW_EVERY_S:
            self._renewed_at = finished_at
            batch.renew.append((self.run_id, self.owner.token, finished_at + LEASE_TTL_S))

    def _activation_row(
        self, ctx: ActivationContext, message: Message, finished_at: float, blobs: BlobTable
    ) -> ActivationRow:
        scrub = self.scrub
        return ActivationRow(
            self.run_id,
            ctx.node,
            ctx.round,
            encode_message(message, scrub),
            encode_calls(ctx.calls or (), blobs, ctx.node, ctx.round, self._earlier, scrub),
            ctx.started_at,
            finished_at - ctx.started_at,
            self.attempt,
        )


def _row_dict(row: RunRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in RunRow.__dataclass_fields__}
