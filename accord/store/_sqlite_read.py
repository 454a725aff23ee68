"""The reading half of :class:`~accord.store.SQLiteStore`: runs, activations, events, texts.

Every record is decoded through :mod:`accord.store._codec` (JSON only, payloads from the
registry, unknown payload kinds as ``StoredPayload``), so a damaged or hostile row raises ``StoreCorruptError`` or ``StoreDecodeError`` naming
the run and the record instead of a ``KeyError`` or a ``JSONDecodeError``.

Caveat: a mixin: the class using it provides ``location``, ``_lock``, ``_conn`` and ``_errors``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from accord.errors import ConfigError, StoreCorruptError
from accord.messages import Usage
from accord.store._base import (
    FILTER_OPS,
    ActivationRecord,
    RunRecord,
    activation_events,
    check_filters,
)
from accord.store._codec import decode_calls, decode_message, load_json

__all__ = ["SQLiteReads"]

_RUN_COLUMNS = (
    "run_id, graph, structure_hash, graph_source, task, status, stop_reason, started_at, "
    "finished_at, duration_s, usage, max_steps, attempts, topology, "
    "(SELECT count(*) FROM activations a WHERE a.run_id = runs.run_id)"
)
_FILTER_COLUMNS = {
    "status": "status",
    "graph": "graph",
    "structure_hash": "structure_hash",
    "started_at": "started_at",
    "duration_s": "duration_s",
}


def _usage(data: Any) -> Usage:
    if not data:
        return Usage()
    requests, prompt, completion, cost = data
    return Usage(requests=requests, prompt_tokens=prompt, completion_tokens=completion, cost=cost)


class SQLiteReads:
    """Queries of a run store in SQLite (see module docstring)."""

    location: str
    _lock: threading.RLock
    _conn: sqlite3.Connection
    _errors: Callable[[], contextlib.AbstractContextManager[None]]

    _settle: Callable[[], None]
    _check_open: Callable[[], None]

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        self._check_open()
        self._settle()
        with self._lock, self._errors():
            return self._conn.execute(sql, params).fetchall()

    def _unknown(self, run_id: str) -> ConfigError:
        return ConfigError(
            f"no run {run_id!r} in the run store {self.location}. List the runs it holds with "
            "`accord runs list`."
        )

    def has_run(self, run_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)))

    def _record(self, row: Any) -> RunRecord:
        run_id = row[0]
        where = {"path": self.location, "run_id": run_id}
        texts = self.texts([row[13]])
        if row[13] not in texts:
            raise StoreCorruptError(
                f"run {run_id!r} in {self.location}: its graph drawing is missing.",
                record="topology",
                **where,
            )
        topology = load_json(texts[row[13]], record="topology", **where)
        usage = load_json(row[10], record="usage", **where) if row[10] is not None else None
        return RunRecord(
            run_id=run_id,
            graph=row[1],
            structure_hash=row[2],
            graph_source=row[3],
            task=row[4],
            status=row[5],
            stop_reason=row[6],
            started_at=row[7],
            finished_at=row[8],
            duration_s=row[9],
            usage=_usage(usage),
            max_steps=row[11],
            attempts=row[12],
            topology=topology,
            activations=row[14],
        )

    def get_run(self, run_id: str) -> RunRecord:
        rows = self._query(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise self._unknown(run_id)
        return self._record(rows[0])

    def list_runs(
        self, filters: dict[str, Any] | None = None, *, limit: int = 50
    ) -> list[RunRecord]:
        """Runs, newest first, that match ``filters`` (see :func:`~accord.store.check_filters`).

        Raises:
            InvalidFilterError: a key, operator or value that is not allowed (no query runs).
        """
        clauses: list[str] = []
        params: list[Any] = []
        for key, op, value in check_filters(filters):
            column = _FILTER_COLUMNS[key]
            if op == "$in":
                clauses.append(f"{column} IN ({', '.join('?' for _ in value)})")
                params.extend(value)
            else:
                clauses.append(f"{column} {FILTER_OPS[op]} ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(
            f"SELECT {_RUN_COLUMNS} FROM runs{where} ORDER BY started_at DESC LIMIT ?",
            (*params, int(limit)),
        )
        return [self._record(r) for r in rows]

    def texts(self, keys: list[str]) -> dict[str, str]:
        """Texts of the blobs table by key (missing keys are left out)."""
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            for key, text in self._query(
                f"SELECT hash, text FROM blobs WHERE hash IN ({marks})", tuple(chunk)
            ):
                found[key] = text
        return found

    def activations(self, run_id: str, *, calls: bool = False) -> list[ActivationRecord]:
        """The run's stored activations, in the order they started.

        Raises:
            StoreCorruptError, StoreDecodeError: a record cannot be decoded.
        """
        rows = self._query(
            "SELECT node, round, message, calls, started_at, duration_s, attempt "
            "FROM activations WHERE run_id = ? ORDER BY started_at, node, round",
            (run_id,),
        )
        where = {"path": self.location, "run_id": run_id}
        decoded = []
        raw: dict[tuple[str, int], Any] = {}
        keys: list[str] = []
        for node, rnd, message, raw_calls, started, duration, attempt in rows:
            record = f"activation {node}/{rnd}"
            if calls:
                raw[(node, rnd)] = load_json(raw_calls, record=record, **where)
                keys.extend(_call_keys(raw[(node, rnd)], record=record, **where))
            msg = decode_message(message, record=record, **where)
            decoded.append((node, rnd, msg, started, duration, attempt))
        found = decode_calls(raw, self.texts(keys), **where) if calls else {}
        return [
            ActivationRecord(
                node=node,
                round=rnd,
                message=message,
                started_at=started,
                duration_s=duration,
                attempt=attempt,
                calls=found.get((node, rnd), []),
            )
            for node, rnd, message, started, duration, attempt in decoded
        ]

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """The run's events in time order, as dicts (``kind``, ``at``, ``attempt``, ...).

        ``activation_started`` and ``activation_finished`` of the activations that ran are rebuilt
        from their rows (which hold the same facts); the rest are stored as they happened.

        Raises:
            StoreCorruptError, StoreDecodeError: a record cannot be decoded.
        """
        rows = self._query(
            "SELECT seq, attempt, data FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        where = {"path": self.location, "run_id": run_id}
        out = activation_events(self.activations(run_id))
        for seq, attempt, data in rows:
            record = f"events {seq}"
            try:
                for kind, at, fields in load_json(data, record=record, **where):
                    out.append({**fields, "kind": kind, "at": at, "attempt": attempt})
            except (TypeError, ValueError) as exc:
                raise StoreCorruptError(
                    f"run {run_id!r}, record {record!r} in {self.location} is not a list of "
                    "events.",
                    record=record,
                    **where,
                ) from exc
        out.sort(key=lambda e: e["at"])
        return out


def _call_keys(data: Any, *, path: str, run_id: str, record: str) -> list[str]:
    try:
        keys: list[str] = []
        for call in data:
            keys.extend(key for _, key in call["request"]["messages"])
            keys.extend(ch["text"] for ch in call["response"]["choices"])
        return keys
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreCorruptError(
            f"run {run_id!r}, record {record!r} in {path}: its model calls are damaged.",
            path=path,
            run_id=run_id,
            record=record,
        ) from exc
