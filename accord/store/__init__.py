"""The run store: durable runs, resume, replay and traces.

``Graph.run`` records every run (durability ``"async"`` by default) into a SQLite file,
``./.accord/runs.db`` unless ``store=`` or ``ACCORD_STORE`` says otherwise: the run (graph name,
structure hash, task, status, timings, usage), each activation (node, round, input message ids,
output message, each model call's request and response, secrets removed) and the events.
``Graph.resume(run_id)`` finishes a run that stopped: a finished activation is never run again and
never lost; an activation that was in flight when the process died runs once more.
:class:`ReplayBackend` re-executes a recorded run offline; :func:`write_trace` draws one as a
self-contained HTML page.

Caveat: with ``"async"`` an activation that finished in the last moments before a crash may not be
stored yet and runs again on resume; use ``"sync"`` when that matters.
"""

from __future__ import annotations

from accord.store._base import (
    FILTER_KEYS,
    ActivationRecord,
    Owner,
    RunRecord,
    RunStore,
    WriteBatch,
    check_filters,
)
from accord.store._codec import redact
from accord.store._recorder import Durability, flush_all
from accord.store._replay import ReplayBackend
from accord.store._run import DEFAULT_STORE, open_store, resolve_durability
from accord.store._schema import SCHEMA_VERSION
from accord.store._sqlite import SQLiteStore
from accord.store._trace import trace_html, write_trace

__all__ = [
    "RunStore",
    "SQLiteStore",
    "open_store",
    "DEFAULT_STORE",
    "SCHEMA_VERSION",
    "Durability",
    "resolve_durability",
    "RunRecord",
    "ActivationRecord",
    "WriteBatch",
    "Owner",
    "FILTER_KEYS",
    "check_filters",
    "ReplayBackend",
    "redact",
    "flush_all",
    "trace_html",
    "write_trace",
]
