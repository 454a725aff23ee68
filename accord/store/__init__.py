"""The run store: durable runs, resume, replay and traces.

The library records a run only when it is given a store: ``graph.run(..., store=...)``,
``accord.configure(store=...)`` or ``ACCORD_STORE`` (the ``accord`` command records into
``./.accord/runs.db`` by default). A record holds the run (graph name, structure hash, origin,
task, status, timings, usage), each activation (node, round, input message ids, output message,
each model call's request and response, verbatim) and the run's start and end. Credentials accord
holds (backend keys, headers) are never recorded; exports and traces redact what looks like one.
A store is a resource: ``async with accord.open_store(path) as store:`` closes it. A
``postgresql://`` URL instead of a path names a :class:`PostgresStore`, which several machines share.
``Graph.resume(run_id)`` finishes a run that stopped: a finished activation is never run again and
never lost; an activation that was in flight when the process died runs once more.
:class:`ReplayBackend` re-executes a recorded run offline; :func:`write_trace` draws one as a
self-contained HTML page.

Caveat: with ``"async"`` an activation that finished in the last moments before a crash may not be
stored yet and runs again on resume; use ``"sync"`` when that matters (see ``_recorder``).
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
from accord.store._codec import StoredPayload, redact
from accord.store._postgres import PostgresStore
from accord.store._questions import QuestionRecord, QuestionTable, give_answers
from accord.store._recorder import Durability, Recorder, flush_all
from accord.store._replay import ReplayBackend
from accord.store._run import (
    DEFAULT_STORE,
    begin_resume,
    begin_run,
    command_store,
    drive,
    open_store,
    resolve_durability,
    resolve_store,
    shared_store,
)
from accord.store._schema import SCHEMA_VERSION
from accord.store._sqlite import SQLiteStore
from accord.store._trace import trace_html, write_trace
from accord.store._views import export_json, load_view

__all__ = [
    "QuestionTable",
    "RunStore",
    "SQLiteStore",
    "PostgresStore",
    "open_store",
    "shared_store",
    "resolve_store",
    "command_store",
    "begin_run",
    "begin_resume",
    "drive",
    "Recorder",
    "StoredPayload",
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
    "export_json",
    "trace_html",
    "write_trace",
    "QuestionRecord",
    "give_answers",
    "load_view",
]
