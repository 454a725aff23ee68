"""The intent journal that makes ``side_effects=True`` tools run at most once across crashes.

A recorded run's activation is stored when it finishes, so a process that dies inside an
activation's tool loop re-runs that activation on resume. For tools with side effects that is
not enough: before such a tool runs, its *intent* is appended to a journal file and flushed to
disk (``fsync``); its result is appended when it returns. When the activation runs again on
resume and the model asks for the same call (same node, round, tool, arguments, and the same
occurrence among identical calls):

- a journaled result is used and the tool is not run again;
- an intent without a result (the process died while the tool ran) is *reported* to the model as
  a call whose outcome is unknown and the tool is not run again, unless it is ``idempotent``.

The journal is one JSON-lines file per run beside the run store (``<store>.tools/<run_id>.jsonl``,
texts redacted like the store's). Caveat: matching relies on the model asking for the same call
again; a model that asks for something else on resume gets what it asks for. Runs without a store
(``durability="off"``) and stores that are not files have no journal.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from accord.tools._tool import ToolResult

__all__ = ["Journal", "journal_for", "call_key"]

_lock = threading.Lock()


def call_key(node: str, round: int, name: str, arguments: str, occurrence: int) -> str:
    """The identity of one call within a run (arguments compared as canonical JSON)."""
    try:
        canonical = json.dumps(json.loads(arguments or "{}"), sort_keys=True)
    except ValueError:
        canonical = arguments
    return json.dumps([node, round, name, canonical, occurrence])


class Journal:
    """One run's journal file (see module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    item = json.loads(line)
                except ValueError:  # a line cut by the crash: that write never finished
                    continue
                if isinstance(item, dict) and isinstance(item.get("key"), str):
                    self.entries.setdefault(item["key"], {}).update(item)

    def _append(self, item: dict[str, Any]) -> None:
        from accord.store import redact

        line = redact(json.dumps(item)) + "\n"
        with _lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        self.entries.setdefault(item["key"], {}).update(item)

    def intent(self, key: str) -> None:
        """Durably note that the call is about to run."""
        self._append({"key": key, "intent": True})

    def done(self, key: str, result: ToolResult) -> None:
        """Durably note the call's result."""
        self._append({"key": key, "content": result.content, "error": result.error})

    def lookup(self, key: str) -> dict[str, Any] | None:
        """What an earlier attempt journaled for the call (None: nothing)."""
        return self.entries.get(key)


def journal_for(recorder: Any, memo: dict[Any, Any], run_id: str) -> Journal | None:
    """The journal of run ``run_id`` beside the recorder's store file (None: no file store)."""
    cached = memo.get(("accord.tools.journal", run_id))
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    location = getattr(getattr(recorder, "store", None), "location", None)
    if not isinstance(location, str) or not location or location.startswith(":memory:"):
        return None
    journal = Journal(Path(f"{location}.tools") / f"{run_id}.jsonl")
    memo[("accord.tools.journal", run_id)] = journal
    return journal
