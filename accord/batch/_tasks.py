"""Batch tasks: what one line of a tasks file (or one item of a list) may hold, and their ids.

A task is a string, or an object ``{"task": "...", "id": "...", "max_steps": N, "meta": {...}}``
where only ``task`` is required. A task without an id gets its 1-based position (``"1"``,
``"2"``, ...). Each task's run id is derived from the batch id and the task id, so running the
same batch again finds the runs it already recorded.

Caveat: a task without an ``id`` is known by its position; inserting a line into the file moves
the ids of the lines after it. Give ids when a tasks file is edited between runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accord.errors import ConfigError

__all__ = ["BatchTask", "parse_tasks", "read_tasks", "batch_id_for", "run_id_for"]

OPTION_KEYS = ("max_steps", "meta")
"""Keys a task object may hold besides ``task`` and ``id``."""


@dataclass(frozen=True, slots=True)
class BatchTask:
    """One task of a batch."""

    id: str
    task: str
    max_steps: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """Copied, as given, into the task's result (labels, reference answers, ...)."""


def _where(source: str, n: int) -> str:
    return f"{source} line {n}" if source else f"task {n}"


def _one(item: Any, n: int, source: str) -> BatchTask:
    where = _where(source, n)
    if isinstance(item, BatchTask):
        return item
    if isinstance(item, str):
        if not item.strip():
            raise ConfigError(f"{where}: the task is empty. Give the task text.")
        return BatchTask(id=str(n), task=item)
    if not isinstance(item, dict):
        raise ConfigError(
            f"{where}: a task is a string or an object with 'task', not a {type(item).__name__}."
        )
    unknown = sorted(set(item) - {"task", "id", *OPTION_KEYS})
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a task object may hold "
            f"'task', 'id', {', '.join(map(repr, OPTION_KEYS))}."
        )
    task = item.get("task")
    if not isinstance(task, str) or not task.strip():
        raise ConfigError(f"{where}: 'task' must be a non-empty string.")
    raw_id = item.get("id", n)
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or str(raw_id) == "":
        raise ConfigError(f"{where}: 'id' must be a non-empty string or an integer.")
    max_steps = item.get("max_steps")
    if max_steps is not None and (
        isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1
    ):
        raise ConfigError(f"{where}: 'max_steps' must be an integer, 1 or more.")
    meta = item.get("meta", {})
    if not isinstance(meta, dict):
        raise ConfigError(f"{where}: 'meta' must be an object.")
    return BatchTask(id=str(raw_id), task=task, max_steps=max_steps, meta=meta)


def parse_tasks(items: Iterable[Any], *, source: str = "") -> list[BatchTask]:
    """Tasks from strings, dicts or :class:`BatchTask` objects.

    Raises:
        ConfigError: an item that is not a task, or two tasks with one id (naming the item).
    """
    tasks: list[BatchTask] = []
    seen: dict[str, int] = {}
    for n, item in enumerate(items, start=1):
        t = _one(item, n, source)
        if t.id in seen:
            raise ConfigError(
                f"{_where(source, n)}: id {t.id!r} is already used by "
                f"{_where(source, seen[t.id])}. Give each task its own id."
            )
        seen[t.id] = n
        tasks.append(t)
    return tasks


def read_tasks(path: Path) -> list[BatchTask]:
    """Tasks from a JSONL file: one JSON string or object per line (blank lines are skipped,
    but count for line numbers and default ids).

    Raises:
        ConfigError: the file cannot be read, or a line is not valid (naming the line).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the tasks file {str(path)!r}: {exc}") from exc
    items: list[tuple[int, Any]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path} line {n} is not JSON ({exc.msg}). Each line is a JSON string, like "
                '"What is 2+2?", or an object, like {"id": "q1", "task": "What is 2+2?"}.'
            ) from exc
    tasks: list[BatchTask] = []
    seen: dict[str, int] = {}
    for n, item in items:
        t = _one(item, n, str(path))
        if t.id in seen:
            raise ConfigError(
                f"{path} line {n}: id {t.id!r} is already used by line {seen[t.id]}. Give each "
                "task its own id."
            )
        seen[t.id] = n
        tasks.append(t)
    if not tasks:
        raise ConfigError(f"the tasks file {str(path)!r} holds no tasks.")
    return tasks


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def batch_id_for(graph: str, tasks: list[BatchTask]) -> str:
    """The default batch id: a digest of the graph's name and the tasks' ids and texts."""
    return _digest(graph, *(f"{t.id}\0{t.task}" for t in tasks))[:16]


def run_id_for(batch_id: str, task_id: str) -> str:
    """The run id of task ``task_id`` in batch ``batch_id`` (the same every time)."""
    return f"{batch_id}-{_digest(task_id)[:16]}"
