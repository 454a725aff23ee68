"""The run-store seam: the rows a recorder writes, the records readers get, and the protocol.

A store implements :class:`RunStore`: one transaction per :class:`WriteBatch`, a lease per run so
two processes never execute one run at once, and reads. :class:`~accord.store.SQLiteStore` is the
default; a PostgreSQL store can implement the same protocol. Filters for :meth:`RunStore.list_runs`
are checked here, against an allow-list, before any store sees them.

Caveat: rows carry JSON text that the recorder already encoded and redacted; a store writes it as
it is and never interprets it.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from accord.backends.base import Completion, Request
from accord.errors import InvalidFilterError
from accord.messages import Message, Usage

__all__ = [
    "RunRow",
    "ActivationRow",
    "EventRow",
    "RunEnd",
    "WriteBatch",
    "Owner",
    "RunRecord",
    "ActivationRecord",
    "RunStore",
    "FILTER_KEYS",
    "check_filters",
    "activation_events",
]


@dataclass(frozen=True, slots=True)
class RunRow:
    """A new run (written once, when it starts)."""

    run_id: str
    graph: str
    structure_hash: str
    graph_source: str | None
    task: str
    started_at: float
    max_steps: int
    topology: str
    """Key of the graph's drawing (nodes and edges as JSON) in the blobs table."""


@dataclass(frozen=True, slots=True)
class ActivationRow:
    """One finished activation: its message (whose ``parents`` are the ids of its input messages)
    and its model calls, both JSON text."""

    run_id: str
    node: str
    round: int
    message: str
    calls: str
    started_at: float
    duration_s: float
    attempt: int


@dataclass(frozen=True, slots=True)
class EventRow:
    """Consecutive events of one attempt of a run: ``data`` is a JSON array whose items are
    ``[kind, at, {fields}]`` (token and message events are not stored: messages have rows)."""

    run_id: str
    attempt: int
    data: str


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How an attempt of a run ended; releases the lease held under ``token``."""

    run_id: str
    status: str
    stop_reason: str | None
    finished_at: float
    duration_s: float
    usage: str
    token: str


@dataclass(slots=True)
class WriteBatch:
    """Rows written in one transaction, in this order: blobs, runs, activations, events, ends."""

    blobs: list[tuple[str, str]] = field(default_factory=list)
    runs: list[tuple[RunRow, Owner]] = field(default_factory=list)
    activations: list[ActivationRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    ends: list[RunEnd] = field(default_factory=list)
    renew: list[tuple[str, str, float]] = field(default_factory=list)
    """(run_id, lease token, new expiry) of leases to extend."""

    def __bool__(self) -> bool:
        return bool(
            self.blobs or self.runs or self.activations or self.events or self.ends or self.renew
        )


LEASE_TTL_S = 300.0
"""How long a lease lasts without renewal (for owners on other hosts; see :class:`Owner`)."""


def _proc_start(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def _proc_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[0] if fields else ""


_me: tuple[int, str, str] | None = None


@dataclass(frozen=True, slots=True)
class Owner:
    """Who executes a run: a random token, the host, the pid and the process start time.

    On the same host a lease is held while its process lives (a SIGKILLed owner frees it at
    once); an owner on another host holds it until ``expires_at``, which each write renews.
    """

    token: str
    host: str
    pid: int
    proc_start: str
    expires_at: float

    @classmethod
    def me(cls, token: str) -> Owner:
        """This process, as the owner of a new lease under ``token``."""
        global _me
        pid = os.getpid()
        if _me is None or _me[0] != pid:  # computed once per process (and again after a fork)
            _me = (pid, socket.gethostname(), _proc_start(pid))
        return cls(token, _me[1], pid, _me[2], time.time() + LEASE_TTL_S)

    def alive(self, now: float) -> bool:
        """Whether this owner may still be running the run."""
        if self.host != socket.gethostname():
            return self.expires_at > now
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        if _proc_state(self.pid) in ("Z", "X"):
            return False
        started = _proc_start(self.pid)
        return not (started and self.proc_start and started != self.proc_start)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A stored run, as :meth:`RunStore.get_run` returns it."""

    run_id: str
    graph: str
    structure_hash: str
    graph_source: str | None
    task: str
    status: str
    """running, completed, stopped, failed, cancelled or waiting (for a person's answers; a
    crashed run stays "running")."""
    stop_reason: str | None
    started_at: float
    finished_at: float | None
    duration_s: float | None
    usage: Usage
    max_steps: int
    attempts: int
    topology: dict[str, Any]
    activations: int = 0


@dataclass(frozen=True, slots=True)
class ActivationRecord:
    """A stored activation."""

    node: str
    round: int
    message: Message
    started_at: float
    duration_s: float
    attempt: int
    calls: list[tuple[Request, Completion]] = field(default_factory=list)
    """Its model calls (request, response), in order; empty unless asked for."""

    @property
    def inputs(self) -> tuple[str, ...]:
        """Ids of the messages it received (its message's parents)."""
        return self.message.parents


def activation_events(activations: list[ActivationRecord]) -> list[dict[str, Any]]:
    """The ``activation_started`` and ``activation_finished`` events of stored activations, as the
    scheduler emitted them (a store keeps these facts in the activation rows, not twice)."""
    out: list[dict[str, Any]] = []
    for a in activations:
        m = a.message
        common = {"node": a.node, "round": a.round, "activation_id": m.id, "attempt": a.attempt}
        out.append(
            {**common, "kind": "activation_started", "at": a.started_at, "inputs": list(a.inputs)}
        )
        out.append(
            {
                **common,
                "kind": "activation_finished",
                "at": a.started_at + a.duration_s,
                "duration_s": a.duration_s,
                "usage": m.usage.model_dump(mode="json"),
                "cached": False,
            }
        )
    return out


FILTER_KEYS: dict[str, tuple[type, ...]] = {
    "status": (str,),
    "graph": (str,),
    "structure_hash": (str,),
    "started_at": (int, float),
    "duration_s": (int, float),
}
"""Keys :meth:`RunStore.list_runs` can filter on, and the value types each accepts."""

FILTER_OPS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
"""Operators, and the SQL each maps to (``$in`` takes a list)."""


def check_filters(filters: dict[str, Any] | None) -> list[tuple[str, str, Any]]:
    """Validate list filters: ``{key: value}`` or ``{key: {op: value}}``; returns (key, op, value).

    Raises:
        InvalidFilterError: a key, operator or value type that is not allowed (before any query).
    """
    out: list[tuple[str, str, Any]] = []
    for key, spec in (filters or {}).items():
        if key not in FILTER_KEYS:
            raise InvalidFilterError(
                f"cannot filter runs on {key!r}: allowed keys are {', '.join(FILTER_KEYS)}."
            )
        conditions = spec.items() if isinstance(spec, dict) else [("$eq", spec)]
        for op, value in conditions:
            if op != "$in" and op not in FILTER_OPS:
                raise InvalidFilterError(
                    f"filter {key!r} uses operator {op!r}: allowed operators are "
                    f"{', '.join([*FILTER_OPS, '$in'])}."
                )
            values = value if op == "$in" else [value]
            if op == "$in" and not isinstance(value, list | tuple):
                raise InvalidFilterError(f"filter {key!r}: '$in' takes a list of values.")
            for v in values:
                if isinstance(v, bool) or not isinstance(v, FILTER_KEYS[key]):
                    raise InvalidFilterError(
                        f"filter {key!r} got a {type(v).__name__}; it takes "
                        + " or ".join(t.__name__ for t in FILTER_KEYS[key])
                        + "."
                    )
            out.append((key, op, list(values) if op == "$in" else value))
    return out


@runtime_checkable
class RunStore(Protocol):
    """Where runs are recorded. Implementations must be safe to call from several threads."""

    location: str
    """The store's path or URL, for messages."""

    def write(self, batch: WriteBatch) -> None:
        """Write ``batch`` in one transaction (idempotent: a row already there is left as it is).

        Raises:
            RunBusyError: a run in ``batch.runs`` is already leased by a live owner.
        """
        ...

    def begin_attempt(self, run_id: str, owner: Owner) -> RunRecord:
        """Take the run's lease for ``owner`` and count one more attempt.

        Raises:
            RunBusyError: another live owner holds the lease.
            ConfigError: no run has that id.
        """
        ...

    def release(self, run_id: str, token: str) -> None:
        """Give up the lease held under ``token`` (nothing happens if another holds it)."""
        ...

    def has_run(self, run_id: str) -> bool: ...

    def get_run(self, run_id: str) -> RunRecord:
        """Raises ConfigError for an unknown id."""
        ...

    def list_runs(
        self, filters: dict[str, Any] | None = None, *, limit: int = 50
    ) -> list[RunRecord]: ...

    def activations(self, run_id: str, *, calls: bool = False) -> list[ActivationRecord]: ...

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """The run's events in order, as dicts with ``kind``, ``at`` and ``attempt``."""
        ...

    def close(self) -> None: ...
