"""Running and resuming a graph with the run store: what ``Graph.run`` and ``Graph.resume`` call.

Settings resolve in this order: durability from the argument, then ``ACCORD_DURABILITY``, then
``"async"``; the store from the argument (a path or a :class:`RunStore`), then ``ACCORD_STORE``,
then ``./.accord/runs.db``. Stores opened by path are shared within a process.

Resume loads the run's finished activations into an
:class:`~accord.runtime.ActivationCache` and executes the graph again with the same run id and
task: cached activations return their stored message without a model call, activations that were
in flight run again, and because transcripts are deterministic given the outputs, the result
equals an uninterrupted run's.

Caveat: a resume is refused when the graph's structure hash differs from the recorded one
(``ConfigError``) and when another live process holds the run's lease (``RunBusyError``).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.backends.base import Backend
from accord.errors import ConfigError, RunError
from accord.runtime._plan import CompiledGraph as Plan
from accord.runtime._scheduler import ActivationCache, EventSink, execute
from accord.runtime.result import RunResult
from accord.runtime.termination import Condition
from accord.store._base import Owner, RunRow, RunStore
from accord.store._codec import blob_hash, redact
from accord.store._recorder import Durability, Recorder
from accord.store._sqlite import SQLiteStore

if TYPE_CHECKING:
    from accord.graphs._graph import Graph

__all__ = [
    "DEFAULT_STORE",
    "resolve_durability",
    "open_store",
    "run_recorded",
    "resume_recorded",
    "GraphInfo",
    "graph_info",
]

DEFAULT_STORE = Path(".accord") / "runs.db"
_MODES = ("off", "async", "sync")


def resolve_durability(value: str | None) -> Durability:
    """The durability mode: ``value``, else ``ACCORD_DURABILITY``, else ``"async"``.

    Raises:
        ConfigError: not one of "off", "async", "sync".
    """
    mode = value or os.environ.get("ACCORD_DURABILITY") or "async"
    if mode not in _MODES:
        source = "durability=" if value else "ACCORD_DURABILITY="
        raise ConfigError(
            f"{source}{mode!r} is not a durability mode; use 'off' (memory only), 'async' "
            "(batched writes, the default) or 'sync' (commit before delivering)."
        )
    return mode  # type: ignore[return-value]


_stores: dict[str, SQLiteStore] = {}
_stores_lock = threading.Lock()


def open_store(store: RunStore | str | os.PathLike[str] | None = None) -> RunStore:
    """The store to record into: ``store`` itself, or the SQLite store at a path (shared).

    Raises:
        StoreCorruptError, StoreVersionError: the file cannot be used (it is not changed).
    """
    if store is not None and not isinstance(store, str | os.PathLike):
        return store
    raw = store if store is not None else os.environ.get("ACCORD_STORE") or DEFAULT_STORE
    key = str(Path(raw).expanduser().absolute())
    with _stores_lock:
        found = _stores.get(key)
        if found is None:
            found = _stores[key] = SQLiteStore(key)
        return found


@dataclass(frozen=True, slots=True)
class GraphInfo:
    """What a run row records about its graph."""

    structure_hash: str
    topology: str
    topology_key: str


_infos: weakref.WeakKeyDictionary[Any, tuple[Plan, GraphInfo]] = weakref.WeakKeyDictionary()


def graph_info(graph: Graph, plan: Plan) -> GraphInfo:
    """The structure hash and drawing (JSON) of ``graph``, cached while its plan stays the same."""
    cached = _infos.get(graph)
    if cached is not None and cached[0] is plan:
        return cached[1]
    nodes = [
        {
            "name": name,
            "kind": type(node).__name__,
            "produces": node.produces.__name__ if node.produces is not None else "text",
            "join": node.join,
        }
        for name, node in plan.nodes.items()
    ]
    edges = [
        {
            "src": e.src,
            "dst": e.dst,
            "when": e.when is not None,
            "max_rounds": e.max_rounds,
            "back": e.back,
        }
        for name in plan.order
        for e in plan.out_edges[name]
    ]
    topology = json.dumps(
        {
            "name": plan.name,
            "nodes": nodes,
            "edges": edges,
            "entries": list(plan.entries),
            "exits": sorted(plan.exits),
        },
        separators=(",", ":"),
    )
    info = GraphInfo(graph.structure_hash(), topology, blob_hash(redact(topology)))
    _infos[graph] = (plan, info)
    return info


def _combine(first: EventSink | None, second: EventSink) -> EventSink:
    if first is None:
        return second

    def both(event: Any) -> None:
        first(event)
        second(event)

    return both


async def _execute(
    recorder: Recorder, plan: Plan, task: str, on_event: EventSink | None, **options: Any
) -> RunResult:
    try:
        result = await execute(
            plan, task, sink=_combine(on_event, recorder.event), recorder=recorder, **options
        )
    except BaseException:
        await recorder.aclose(raise_errors=False)
        try:
            recorder.store.release(recorder.run_id, recorder.owner.token)
        except Exception:  # the original error matters more
            pass
        raise
    try:
        await recorder.aclose()
    except RunError as exc:
        exc.result = result
        raise
    return result


async def run_recorded(
    graph: Graph,
    plan: Plan,
    task: str,
    *,
    mode: Durability,
    store: RunStore | str | os.PathLike[str] | None,
    run_id: str,
    given_run_id: bool,
    on_event: EventSink | None,
    stream_tokens: bool,
    max_steps: int,
    **options: Any,
) -> RunResult:
    """Execute ``plan`` on ``task`` and record it (``Graph.run`` with durability on)."""
    target = open_store(store)
    if given_run_id and target.has_run(run_id):
        raise ConfigError(
            f"run {run_id!r} is already in the run store {target.location}. Resume it with "
            f"graph.resume({run_id!r}), or give the new run another run_id."
        )
    info = graph_info(graph, plan)
    row = RunRow(
        run_id=run_id,
        graph=plan.name,
        structure_hash=info.structure_hash,
        graph_source=getattr(graph, "source", None),
        task=redact(task),
        started_at=time.time(),
        max_steps=max_steps,
        topology=info.topology_key,
    )
    recorder = Recorder(target, mode, run_id, 1, Owner.me(uuid.uuid4().hex), row, info.topology)
    return await _execute(
        recorder,
        plan,
        task,
        on_event,
        run_id=run_id,
        max_steps=max_steps,
        wants_tokens=stream_tokens and on_event is not None,
        **options,
    )


async def resume_recorded(
    graph: Graph,
    run_id: str,
    backend: Backend | str | None = None,
    *,
    store: RunStore | str | os.PathLike[str] | None = None,
    durability: str | None = None,
    until: Condition | None = None,
    max_steps: int | None = None,
    on_event: EventSink | None = None,
    stream_tokens: bool = False,
) -> RunResult:
    """Resume run ``run_id`` of ``graph`` from the store (``Graph.resume``; see module docstring)."""
    if durability == "off":
        raise ConfigError(
            "graph.resume() records the run's progress: use durability='async' or 'sync'."
        )
    env = os.environ.get("ACCORD_DURABILITY")
    mode = resolve_durability(durability or (env if env != "off" else None))
    target = open_store(store)
    record = target.get_run(run_id)
    plan = graph._compile()
    info = graph_info(graph, plan)
    if record.structure_hash != info.structure_hash:
        raise ConfigError(
            f"run {run_id!r} was recorded with graph {record.graph!r} of structure "
            f"{record.structure_hash}, but graph {plan.name!r} has structure "
            f"{info.structure_hash}: its nodes, edges or bounds differ. Resume the run with the "
            "graph that started it."
        )
    if isinstance(backend, str):
        from accord.backends import backend as resolve

        backend = resolve(backend)
    owner = Owner.me(uuid.uuid4().hex)
    record = target.begin_attempt(run_id, owner)
    try:
        finished = target.activations(run_id)
        cache = ActivationCache({a.message.id: a.message for a in finished})
        recorder = Recorder(target, mode, run_id, record.attempts, owner, None)
    except BaseException:
        target.release(run_id, owner.token)
        raise
    return await _execute(
        recorder,
        plan,
        record.task,
        on_event,
        run_id=run_id,
        default_backend=backend,
        until=until,
        max_steps=max_steps or record.max_steps,
        wants_tokens=stream_tokens and on_event is not None,
        cache=cache,
    )
