"""Batch runs: one graph over many tasks, resumable, on this machine or on Ray.

``accord.batch(graph, tasks, store=...)`` is an async iterator of results as runs finish, with a
summary; ``accord batch FILE.py:graph tasks.jsonl --out results.jsonl`` is the command (see
:mod:`accord.batch.cli`). With a store, each task's run id is derived from the batch id and the
task id, so running the same batch again skips finished runs, resumes interrupted ones, and
retries failed ones only when asked.

Caveat: Ray is imported only when ``ray=`` / ``--ray`` is given (``pip install "accord[ray]"``).
"""

from __future__ import annotations

from accord.batch._engine import Batch, BatchSummary, batch
from accord.batch._exec import BatchResult
from accord.batch._tasks import BatchTask, parse_tasks, read_tasks, run_id_for

__all__ = [
    "batch",
    "Batch",
    "BatchResult",
    "BatchSummary",
    "BatchTask",
    "parse_tasks",
    "read_tasks",
    "run_id_for",
]
