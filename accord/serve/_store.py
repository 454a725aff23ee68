"""Everything the server asks of the run store, in one place.

The server records each run it starts (``graph.run(..., store=...)``) and reads finished runs back
for ``GET /v1/runs/{id}``, its events and its trace page. Only the store's public calls are used:
``open_store``, ``RunStore.get_run/has_run/events``, the read-side view and ``trace_html``.

Caveat: reads are blocking SQLite calls; the server runs them in a worker thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord.errors import ConfigError
from accord.messages import Message, Usage

__all__ = ["RunsStore", "StoredRun"]


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A run as the store holds it."""

    run_id: str
    graph: str
    status: str
    stop_reason: str | None
    started_at: float
    duration_s: float | None
    usage: Usage
    output: Message | None


class RunsStore:
    """The run store the server records into and reads from.

    Args:
        location: a path or ``postgresql://`` URL (default ``ACCORD_STORE``, else
            ``./.accord/runs.db``) or a ``RunStore``.
    """

    def __init__(self, location: Any = None) -> None:
        if location is None:
            location = os.environ.get("ACCORD_STORE") or Path(".accord") / "runs.db"
        if isinstance(location, str | os.PathLike) and not str(location).startswith(
            ("postgresql://", "postgres://")
        ):
            Path(location).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.location = location

    def run_options(self) -> dict[str, Any]:
        """Keyword arguments for ``graph.run`` that record the run in this store.

        The server records every run it starts, whatever ``ACCORD_DURABILITY`` says.
        """
        return {"store": self.location, "durability": "async"}

    def _open(self) -> Any:
        from accord.store import open_store, shared_store

        if str(self.location).startswith(("postgresql://", "postgres://")):
            return shared_store(self.location)  # one connection, not one per request
        return open_store(self.location)

    def give_answers(self, run_id: str, answers: dict[str, Any]) -> None:
        """Check ``answers`` against the run's pending questions and record them (all or none).

        Raises:
            AnswerError: an answer does not fit, or names no pending question.
        """
        from accord.store import give_answers

        give_answers(self._open(), run_id, answers)

    def pending(self, run_id: str) -> list[dict[str, Any]]:
        """The questions run ``run_id`` waits for (id, node, round, question, answer schema)."""
        from accord.store import QuestionTable

        store = self._open()
        if not isinstance(store, QuestionTable):
            return []
        return [
            {
                "id": r.question.id,
                "node": r.question.node,
                "round": r.question.round,
                "question": r.question.question,
                "answer_schema": r.question.answer_schema,
            }
            for r in store.questions(run_id)
            if r.pending
        ]

    def get(self, run_id: str) -> StoredRun | None:
        """The stored run ``run_id``, or None when the store has no such run."""
        from accord.store import load_view

        store = self._open()
        if not store.has_run(run_id):
            return None
        view = load_view(store, run_id)
        r = view.record
        exits = set(r.topology.get("exits", []))
        output = next((m for m in reversed(view.transcript) if m.sender in exits), None)
        return StoredRun(
            run_id=r.run_id,
            graph=r.graph,
            status=r.status,
            stop_reason=r.stop_reason,
            started_at=r.started_at,
            duration_s=r.duration_s,
            usage=r.usage,
            output=output,
        )

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """The stored events of ``run_id`` (no token or message events: the store keeps none).

        Raises:
            ConfigError: no such run.
        """
        store = self._open()
        if not store.has_run(run_id):
            raise ConfigError(f"no run {run_id!r} in the run store.")
        events: list[dict[str, Any]] = store.events(run_id)
        return events

    def trace(self, run_id: str) -> str | None:
        """The run's HTML trace page, or None when the store has no such run."""
        from accord.store import trace_html

        store = self._open()
        if not store.has_run(run_id):
            return None
        return trace_html(store, run_id)

    def close(self) -> None:
        """Nothing to do with a shared store opened by path (the store owns its lifecycle)."""
