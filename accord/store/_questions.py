"""The questions table: what runs asked a person, and the answers (schema version 2).

A question is written when a node first asks it (so a run that ends ``"waiting"`` has its pending
questions durable), its answer when one is given (``graph.resume(answers=...)``, ``accord runs
answer``, a terminal prompt, or a timeout's default). Answers are JSON; the question text goes
through the store's ``redact`` like every other text.

Caveat: these writes are small transactions of their own, outside the recorder's batches: a
question must be durable before its run reports that it waits.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accord.errors import ConfigError
from accord.runtime import AnswerError, Question, check_answer
from accord.store._codec import load_json

__all__ = ["QuestionRecord", "QuestionTable", "give_answers"]


@dataclass(frozen=True, slots=True)
class QuestionRecord:
    """A stored question and its answer (``answered_at`` is None while it is pending)."""

    question: Question
    answer: Any = None
    answered_at: float | None = None

    @property
    def pending(self) -> bool:
        return self.answered_at is None


class QuestionTable:
    """The questions table's reads and writes (mixed into the SQLite and PostgreSQL stores)."""

    @staticmethod
    def _sql(text: str) -> str:
        """A statement written with ``?`` placeholders, in the store's own dialect."""
        return text

    location: str
    redact: Callable[[str], str] | None
    _lock: threading.RLock
    _transaction: Callable[[], contextlib.AbstractContextManager[Any]]
    _query: Callable[..., list[Any]]

    def put_question(self, q: Question) -> float:
        """Record ``q`` unless it is there; returns when it was first asked."""
        text = self.redact(q.question) if self.redact is not None else q.question
        with self._transaction() as conn:
            conn.execute(
                self._sql(
                    "INSERT INTO questions (run_id, question_id, node, round, question, "
                    "answer_schema, asked_at, timeout) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING"
                ),
                (
                    q.run_id,
                    q.id,
                    q.node,
                    q.round,
                    text,
                    json.dumps(q.answer_schema),
                    q.asked_at,
                    q.timeout,
                ),
            )
            row = conn.execute(
                self._sql("SELECT asked_at FROM questions WHERE run_id = ? AND question_id = ?"),
                (q.run_id, q.id),
            ).fetchone()
        return float(row[0])

    def put_answer(self, run_id: str, question_id: str, answer: Any) -> None:
        """Record the answer to a question (JSON-able; replaces an earlier one)."""
        with self._transaction() as conn:
            conn.execute(
                self._sql(
                    "UPDATE questions SET answer = ?, answered_at = ? "
                    "WHERE run_id = ? AND question_id = ?"
                ),
                (json.dumps(answer), time.time(), run_id, question_id),
            )

    def questions(self, run_id: str) -> list[QuestionRecord]:
        """The run's questions, in the order they were asked."""
        rows = self._query(
            "SELECT question_id, node, round, question, answer_schema, asked_at, timeout, answer, "
            "answered_at FROM questions WHERE run_id = ? ORDER BY asked_at, question_id",
            (run_id,),
        )
        where = {"path": self.location, "run_id": run_id}
        out = []
        for qid, node, rnd, text, schema, asked, timeout, answer, answered in rows:
            record = f"question {qid}"
            q = Question(
                id=qid,
                run_id=run_id,
                node=node,
                round=rnd,
                question=text,
                answer_schema=load_json(schema, record=record, **where),
                asked_at=asked,
                timeout=timeout,
            )
            value = load_json(answer, record=record, **where) if answer is not None else None
            out.append(QuestionRecord(q, value, answered))
        return out


def give_answers(store: Any, run_id: str, answers: dict[str, Any]) -> None:
    """Check ``answers`` (question id to JSON-able value) against run ``run_id``'s pending
    questions and record them; nothing is recorded unless all fit.

    Raises:
        AnswerError: an id names no pending question, or a value does not fit its schema (the
            run stays waiting).
        ConfigError: the store keeps no questions.
    """
    if not isinstance(store, QuestionTable):
        raise ConfigError(
            f"the run store {store.location} keeps no questions, so it cannot take answers."
        )
    from accord.runtime import to_json

    found = {r.question.id: r for r in store.questions(run_id)}
    pending = [qid for qid, r in found.items() if r.pending]
    values: dict[str, Any] = {}
    for qid, value in answers.items():
        record = found.get(qid)
        if record is None or not record.pending:
            listed = ", ".join(repr(p) for p in pending) or "none"
            state = "was already answered" if record is not None else "is not a question of it"
            raise AnswerError(
                f"run {run_id!r}: {qid!r} {state}. Its pending questions: {listed} "
                f"(`accord runs show {run_id}` lists them)."
            )
        values[qid] = to_json(value)
        check_answer(record.question.answer_schema, values[qid], qid)
    for qid, value in values.items():
        store.put_answer(run_id, qid, value)
