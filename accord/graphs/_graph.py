"""Graph: agents and steps as nodes of a ``networkx.DiGraph``, validated before anything runs.

Build a graph with :meth:`Graph.add` and :meth:`Graph.connect`, then ``await graph.run(task)``.
Entry nodes are those with no incoming edge unless set with :meth:`Graph.set_entry`; exit nodes
(whose messages are the run's output) are those with no outgoing edge unless set with
:meth:`Graph.set_exit`. A loop is a back edge with an exit condition (``when=``) or a bound
(``max_rounds=``). Which edges are back edges follows from the graph alone, never from the order
nodes and edges were added: an edge into an entry, or a conditional/bounded edge on a cycle whose
target is no farther from the entries than its source (see :mod:`accord.runtime._plan`); a
wiring that rule cannot order is a :class:`~accord.errors.GraphError` naming the edge.

Example::

    g = accord.Graph("review")
    g.add(accord.Solver("solver"), accord.Critic("critic"))
    g.connect("solver", "critic")
    g.connect("critic", "solver", when=lambda m: not m.payload.approved, max_rounds=3)
    g.set_exit("solver")
    result = await g.run("write a haiku about rain", backend=accord.backend("openai:gpt-4o-mini"))

Caveat: validation runs before every run; a graph that fails it makes no model call.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accord._ids import new_id
from accord.backends.base import Backend
from accord.errors import ConfigError, GraphError
from accord.messages import Message, Payload
from accord.runtime import (
    ActivationCache,
    ActivationContext,
    CompiledGraph,
    EdgeSpec,
    EventSink,
    Node,
    NodeOutput,
    current_context,
    execute,
    plan_edges,
    run_inner,
)
from accord.runtime.result import RunResult
from accord.runtime.termination import Condition

if TYPE_CHECKING:
    import networkx as nx

    from accord.store import Durability, RunStore

__all__ = ["Graph", "Edge", "Subgraph"]

NodeLike = Any  # a Node, or a Graph (wrapped as a Subgraph)

DEFAULT_MAX_STEPS = 50
"""The step limit of a run when neither ``run`` nor the graph gives one."""


@dataclass(frozen=True, slots=True)
class Edge:
    """An edge as the user declared it."""

    src: str
    dst: str
    when: Callable[[Message], bool] | None = None
    max_rounds: int | None = None


def _name_of(x: str | NodeLike) -> str:
    return x if isinstance(x, str) else str(getattr(x, "name", x))


def _reachable(starts: list[str], neighbours: dict[str, list[str]]) -> set[str]:
    """Every node reachable from ``starts`` along ``neighbours`` (starts included)."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(neighbours[n])
    return seen


RESERVED_NAMES = frozenset({"task"})
"""Node names the runtime uses itself: ``task`` is the sender of the task message."""


def _check_name(name: object) -> None:
    """The one rule for node names, enforced when a node is added.

    Raises:
        GraphError: the name is empty, reserved, or contains ``/`` (which separates the nodes of
            a subgraph from their parent's in events: ``outer/inner``).
    """
    if not isinstance(name, str) or not name:
        raise GraphError(f"a node's name must be a non-empty string, not {name!r}.")
    if name in RESERVED_NAMES:
        raise GraphError(
            f"a node cannot be named {name!r}: accord uses that name for the task message, so "
            f"agents would not show the node's output. Rename it (e.g. {name + '_node'!r}).",
            nodes=(name,),
        )
    if "/" in name:
        raise GraphError(
            f"node name {name!r} contains '/', which separates a subgraph's nodes from their "
            f"parent's (outer/inner). Rename it (e.g. {name.replace('/', '_')!r}).",
            nodes=(name,),
        )


def _type_name(t: type[Payload] | None) -> str:
    return t.__name__ if t is not None else "text"


class Graph:
    """A workflow of nodes (agents, steps, subgraphs) and the edges messages travel along."""

    def __init__(self, name: str = "graph", *, max_steps: int | None = None) -> None:
        if max_steps is not None and max_steps < 1:
            raise ConfigError(f"Graph({name!r}): max_steps must be 1 or more, not {max_steps}.")
        self.name = name
        self.max_steps = max_steps
        """The graph's own step limit, used when ``run`` is given none (default: 50). Patterns
        set it from their size."""
        self._nodes: dict[str, Node] = {}
        self._edges: list[Edge] = []
        self._entries: tuple[str, ...] | None = None
        self._exits: tuple[str, ...] | None = None
        self._duplicates: list[str] = []
        self._plan: CompiledGraph | None = None
        self._recording: tuple[CompiledGraph, str, str] | None = None
        self.origin: dict[str, Any] | None = None
        """How the graph was made, recorded with its runs so ``accord runs resume ID`` can build
        it again: ``{"file": "/abs/path.py:NAME"}`` for a graph loaded from a file, or
        ``{"pattern": NAME, **options}`` for a built-in pattern built by the ``accord``
        command. None: unknown (``accord runs resume --graph FILE.py:NAME`` then names it)."""

    @property
    def source(self) -> str | None:
        """Where the graph can be loaded again (``FILE.py:NAME``), when it came from a file."""
        origin = self.origin or {}
        found = origin.get("file")
        return found if isinstance(found, str) else None

    @source.setter
    def source(self, value: str | None) -> None:
        self.origin = {"file": value} if value is not None else None

    def _origin_text(self) -> str | None:
        """The origin as the store records it: a file's ``PATH:NAME``, else JSON."""
        origin = self.origin
        if not origin:
            return None
        if set(origin) == {"file"} and isinstance(origin["file"], str):
            return origin["file"]
        return json.dumps(origin, sort_keys=True, default=str)

    # ------------------------------------------------------------------ building

    def add(self, *nodes: NodeLike) -> Graph:
        """Add nodes (agents, steps, or whole graphs, which become subgraph nodes)."""
        for node in nodes:
            if isinstance(node, Graph):
                node = Subgraph(node)
            if not isinstance(node, Node):
                raise ConfigError(
                    f"{node!r} is not a node: add an accord.Agent, a function decorated with "
                    "@accord.step, or an accord.Graph."
                )
            _check_name(node.name)
            if node.name in self._nodes:
                self._duplicates.append(node.name)
            else:
                self._nodes[node.name] = node
        self._plan = None
        return self

    def connect(
        self,
        src: str | NodeLike,
        dst: str | NodeLike,
        *,
        when: Callable[[Message], bool] | None = None,
        max_rounds: int | None = None,
    ) -> Graph:
        """Send ``src``'s messages to ``dst``.

        Args:
            src, dst: node names or nodes.
            when: deliver only the messages for which this returns True (an exit condition).
            max_rounds: deliver only while ``dst`` has started fewer than this many times in the
                run (a bound). It counts runs of the *destination*, all of them (the first round
                too, however it was started), not trips around the loop or runs of ``src``.

        On a loop's back edge, ``max_rounds=N`` is therefore the most times the loop's first
        node runs: with ``solver -> critic`` and ``critic -> solver`` bounded by
        ``max_rounds=3``, the solver writes at most 3 drafts (its first, then at most 2
        revisions) and the critic reviews each, so at most 3 critiques; the third critique is
        not delivered. For "at most R revisions" pass ``max_rounds=R + 1``.

        Example::

            graph.connect("solver", "critic")
            graph.connect("critic", "solver", when=lambda m: not m.payload.approved,
                          max_rounds=3)  # solver runs <= 3 times: 1 draft + <= 2 revisions
        """
        if max_rounds is not None and max_rounds < 1:
            raise ConfigError(
                f"connect({_name_of(src)!r}, {_name_of(dst)!r}): max_rounds must be 1 or more."
            )
        self._edges.append(Edge(_name_of(src), _name_of(dst), when, max_rounds))
        self._plan = None
        return self

    def set_entry(self, *names: str | NodeLike) -> Graph:
        """Name the nodes that receive the task (default: nodes with no incoming edge)."""
        self._entries = tuple(_name_of(n) for n in names)
        self._plan = None
        return self

    def set_exit(self, *names: str | NodeLike) -> Graph:
        """Name the nodes whose messages are the output (default: nodes with no outgoing edge)."""
        self._exits = tuple(_name_of(n) for n in names)
        self._plan = None
        return self

    # ------------------------------------------------------------------ reading

    @property
    def nodes(self) -> dict[str, Node]:
        """The nodes by name, in the order they were added."""
        return dict(self._nodes)

    @property
    def edges(self) -> list[Edge]:
        return list(self._edges)

    @property
    def entries(self) -> tuple[str, ...]:
        """The nodes that receive the task: those set with :meth:`set_entry`; else the nodes with
        no incoming edge; else (every node is on a loop) the nodes whose incoming edges all carry
        a condition or a bound, as the first node of a critique loop does."""
        if self._entries is not None:
            return self._entries
        targets = {e.dst for e in self._edges}
        found = tuple(n for n in self._nodes if n not in targets)
        if found:
            return found
        plain = {e.dst for e in self._edges if e.when is None and e.max_rounds is None}
        return tuple(n for n in self._nodes if n not in plain)

    @property
    def exits(self) -> tuple[str, ...]:
        if self._exits is not None:
            return self._exits
        sources = {e.src for e in self._edges}
        return tuple(n for n in self._nodes if n not in sources)

    def to_networkx(self) -> nx.DiGraph:
        """A ``networkx.DiGraph`` of the graph (node attribute ``node``, edge attributes
        ``when`` and ``max_rounds``)."""
        import networkx as nx

        g = nx.DiGraph(name=self.name)
        for name, node in self._nodes.items():
            g.add_node(name, node=node)
        for e in self._edges:
            g.add_edge(e.src, e.dst, when=e.when, max_rounds=e.max_rounds)
        return g

    def structure_hash(self) -> str:
        """A hash of the graph's structure (names, node kinds and types, edges and bounds)."""
        h = hashlib.sha256(self.name.encode())
        for name, node in self._nodes.items():
            h.update(
                f"|n:{name}:{type(node).__name__}:{_type_name(node.produces)}:{node.join}".encode()
            )
        for e in self._edges:
            h.update(f"|e:{e.src}>{e.dst}:{e.when is not None}:{e.max_rounds}".encode())
        h.update(f"|in:{self.entries}|out:{self.exits}".encode())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------------ validation

    def validate(self) -> None:
        """Check the graph; raise one :class:`GraphError` listing every problem found."""
        self._compile()

    def _problems(self) -> tuple[list[str], list[str]]:
        problems: list[str] = []
        named: list[str] = []
        nodes = self._nodes
        for name in dict.fromkeys(self._duplicates):
            problems.append(f"two nodes are named {name!r}. Give each node a unique name.")
            named.append(name)
        if not nodes:
            return [
                *problems,
                f"graph {self.name!r} has no nodes. Add some with graph.add(...).",
            ], named
        for e in self._edges:
            for end in (e.src, e.dst):
                if end not in nodes:
                    problems.append(
                        f"edge {e.src!r} -> {e.dst!r} names {end!r}, which is not a node of the graph. "
                        f"Add it (graph.add(...)) or fix the name."
                    )
                    named.append(end)
        edges = [e for e in self._edges if e.src in nodes and e.dst in nodes]
        entries, exits = self.entries, self.exits
        for label, chosen in (("entry", self._entries), ("exit", self._exits)):
            for n in chosen or ():
                if n not in nodes:
                    problems.append(f"{label} node {n!r} is not a node of the graph.")
                    named.append(n)
        if not entries:
            problems.append(
                "the graph has no entry: every node has an incoming edge, so none would receive the "
                "task. Name one with graph.set_entry(...)."
            )
        if not exits:
            problems.append(
                "the graph has no exit: every node has an outgoing edge. Name the node whose message "
                "is the answer with graph.set_exit(...)."
            )
        succ: dict[str, list[str]] = {n: [] for n in nodes}
        pred: dict[str, list[str]] = {n: [] for n in nodes}
        for e in edges:
            succ[e.src].append(e.dst)
            pred[e.dst].append(e.src)
        seen = _reachable([n for n in entries if n in nodes], succ)
        if entries:
            for n in nodes:
                if n not in seen:
                    problems.append(
                        f"node {n!r} cannot be reached from an entry ({', '.join(map(repr, entries))}), "
                        f"so it would never receive a message. Connect it (graph.connect(..., {n!r})) "
                        "or remove it."
                    )
                    named.append(n)
        if self._exits is not None:
            for n in nodes:
                if not succ[n] and n not in exits:
                    problems.append(
                        f"node {n!r} has no outgoing edge and is not an exit, so its message would go "
                        f"nowhere. Connect it (graph.connect({n!r}, ...)) or add it to set_exit(...)."
                    )
                    named.append(n)
            leads_out = _reachable([n for n in exits if n in nodes], pred)
            for n in nodes:
                if succ[n] and n not in leads_out:
                    problems.append(
                        f"node {n!r} has no path to an exit ({', '.join(map(repr, exits))}), so "
                        "its work could never reach the output. Connect it towards an exit or add "
                        "it to set_exit(...)."
                    )
                    named.append(n)
        import networkx as nx  # imported on first validation: keeps `import accord` light

        free = nx.DiGraph()
        free.add_edges_from(
            (e.src, e.dst) for e in edges if e.when is None and e.max_rounds is None
        )
        for component in nx.strongly_connected_components(free):
            if len(component) > 1 or any(free.has_edge(n, n) for n in component):
                cycle = nx.find_cycle(free.subgraph(component))
                path = " -> ".join([cycle[0][0], *(v for _, v in cycle)])
                problems.append(
                    f"cycle without exit condition: {path}. Give one of its edges a condition "
                    "(connect(..., when=...)) or a bound (connect(..., max_rounds=N))."
                )
                named.extend(u for u, _ in cycle)
        for e in edges:
            producer, consumer = nodes[e.src], nodes[e.dst]
            accepts = consumer.accepts
            if accepts is None:
                continue
            produced = producer.produces
            if produced is None or not issubclass(produced, accepts):
                want = " or ".join(t.__name__ for t in accepts)
                problems.append(
                    f"edge {e.src!r} -> {e.dst!r}: {e.src!r} produces {_type_name(produced)} but "
                    f"{e.dst!r} accepts only {want}. Connect a node that produces {want}, or change "
                    f"what {e.dst!r} accepts."
                )
                named.extend((e.src, e.dst))
        if not problems:
            problems.extend(self._loops()[2])
        for name, node in nodes.items():
            if isinstance(node, Subgraph):
                try:
                    node.graph._compile()
                except GraphError as exc:
                    problems.append(f"subgraph {name!r} is invalid: {exc}")
                    named.append(name)
        for n in entries:
            if n in nodes and nodes[n].accepts is not None:
                want = " or ".join(t.__name__ for t in nodes[n].accepts or ())
                problems.append(
                    f"entry node {n!r} accepts only {want}, but an entry receives the task text. Put a "
                    f"node that produces {want} before it."
                )
                named.append(n)
        return problems, named

    def _compile(self) -> CompiledGraph:
        if self._plan is not None:
            return self._plan
        problems, named = self._problems()
        if problems:
            if len(problems) == 1:
                message = problems[0]
            else:
                message = (
                    f"graph {self.name!r} is invalid ({len(problems)} problems):\n"
                    + "\n".join(f"- {p}" for p in problems)
                )
            raise GraphError(message, nodes=tuple(dict.fromkeys(named)), problems=tuple(problems))
        back, order, _ = self._loops()
        index = {n: i for i, n in enumerate(order)}
        out: dict[str, list[EdgeSpec]] = {n: [] for n in order}
        fwd: dict[str, list[str]] = {n: [] for n in order}
        bck: dict[str, list[str]] = {n: [] for n in order}
        for e, is_back in zip(self._edges, back, strict=True):
            out[e.src].append(EdgeSpec(e.src, e.dst, e.when, e.max_rounds, is_back))
            (bck if is_back else fwd)[e.dst].append(e.src)

        def canonical(names: list[str]) -> tuple[str, ...]:
            return tuple(sorted(set(names), key=index.__getitem__))

        self._plan = CompiledGraph(
            name=self.name,
            order=order,
            nodes={n: self._nodes[n] for n in order},
            entries=canonical(list(self.entries)),
            exits=frozenset(self.exits),
            out_edges={
                n: tuple(sorted(v, key=lambda e: (index[e.dst], e.back))) for n, v in out.items()
            },
            forward_preds={n: canonical(v) for n, v in fwd.items()},
            back_preds={n: canonical(v) for n, v in bck.items()},
            index=index,
            max_steps=self.max_steps,
        )
        return self._plan

    def _loops(self) -> tuple[list[bool], tuple[str, ...], list[str]]:
        """Back edges, canonical order and ambiguity problems (see :mod:`accord.runtime._plan`)."""
        return plan_edges(
            tuple(self._nodes),
            self.entries,
            [(e.src, e.dst, e.when is not None or e.max_rounds is not None) for e in self._edges],
        )

    # ------------------------------------------------------------------ running

    async def run(
        self,
        task: str,
        backend: Backend | str | None = None,
        *,
        until: Condition | None = None,
        max_steps: int | None = None,
        run_id: str | None = None,
        on_event: EventSink | None = None,
        stream_tokens: bool = False,
        cache: ActivationCache | None = None,
        store: RunStore | str | os.PathLike[str] | None = None,
        durability: Durability | None = None,
    ) -> RunResult:
        """Run the graph on ``task``.

        Args:
            task: the task text every entry node receives.
            backend: the default backend (or ``"provider:model"`` name) for agents that have none.
            until: a termination condition (``MaxSteps(20) | TokenBudget(5000)``); when it fires
                the run stops with status ``"stopped"``.
            max_steps: the safety limit on activations; reaching it raises ``StepLimitError``
                (default: the graph's ``max_steps``, else 50).
            run_id: the run's id (default: a new random id).
            on_event: called with every event (see :mod:`accord.runtime.events`).
            stream_tokens: stream model replies as ``token`` events (needs ``on_event``).
            store: the run store to record into: a path or a store from
                :func:`accord.open_store`. Default: the store set with
                ``accord.configure(store=...)``, else ``ACCORD_STORE``, else none: the run is not
                recorded.
            durability: with a store, ``"async"`` (the default: records are written by the
                store's writer thread, off the event loop; see "What is recorded where" in the
                README for what that guarantees) or ``"sync"`` (each activation is committed
                before its message is delivered, and the run is durable when this returns);
                ``"off"`` records nothing. Default ``ACCORD_DURABILITY``, else ``"async"``. A run
                started inside another run's activation (a subgraph) is not recorded unless it
                names a store.

        Raises:
            GraphError: the graph is invalid (nothing ran).
            ConfigError: a bad argument (a task that is not text, or holds a lone surrogate).
            RunError: a node failed; ``err.result`` holds the partial result.
            StoreError: the run could not be recorded.
        """
        _check_task(task)
        if max_steps is None:
            max_steps = self.max_steps or DEFAULT_MAX_STEPS
        if max_steps < 1:
            raise ConfigError(f"max_steps must be 1 or more, not {max_steps}.")
        plan = self._compile()
        if isinstance(backend, str):
            from accord.backends import backend as resolve

            backend = resolve(backend)
        if _recording(store, durability):
            from accord.store import begin_run, drive, resolve_durability, resolve_store

            target = resolve_store(store)
            mode = resolve_durability(durability)
            if target is not None and mode != "off":
                rid = run_id or new_id()
                structure_hash, topology = self._drawing(plan)
                recorder = begin_run(
                    target,
                    mode,
                    run_id=rid,
                    given_run_id=run_id is not None,
                    graph=plan.name,
                    structure_hash=structure_hash,
                    origin=self._origin_text(),
                    task=task,
                    max_steps=max_steps,
                    topology=topology,
                )
                return await drive(
                    recorder,
                    execute(
                        plan,
                        task,
                        run_id=rid,
                        default_backend=backend,
                        until=until,
                        max_steps=max_steps,
                        sink=on_event,
                        wants_tokens=stream_tokens,
                        cache=cache,
                        recorder=recorder,
                    ),
                )
        return await execute(
            plan,
            task,
            run_id=run_id or new_id(),
            default_backend=backend,
            until=until,
            max_steps=max_steps,
            sink=on_event,
            wants_tokens=stream_tokens,
            cache=cache,
        )

    async def resume(
        self,
        run_id: str,
        backend: Backend | str | None = None,
        *,
        store: RunStore | str | os.PathLike[str] | None = None,
        durability: Durability | None = None,
        until: Condition | None = None,
        max_steps: int | None = None,
        on_event: EventSink | None = None,
        stream_tokens: bool = False,
        answers: dict[str, Any] | None = None,
    ) -> RunResult:
        """Finish run ``run_id`` from the run store.

        Activations the store holds are not run again (their messages come from the store, with
        no model call); activations that were in flight when the run stopped run once more. The
        result equals that of an uninterrupted run with the same model outputs. A completed run
        resumes to its recorded result without any model call.

        Args:
            run_id: the run to resume (``accord runs list`` shows them).
            backend: the default backend for agents that have none.
            store: the store holding the run (default: ``accord.configure``'s, else
                ``ACCORD_STORE``, else ``./.accord/runs.db``, where the ``accord`` command records).
            durability: ``"async"`` or ``"sync"`` for the rest of the run (default as for
                :meth:`run`; ``"off"`` is refused).
            until: a termination condition for the rest of the run.
            max_steps: the step limit (default: the one the run started with).
            on_event, stream_tokens: as for :meth:`run`.
            answers: answers to a waiting run's questions (``{question_id: value}``, the ids in
                ``result.questions``); checked against each question's schema first.

        Raises:
            AnswerError: an answer does not fit its question, or names none that is pending (the
                run is not touched and stays waiting).
            ConfigError: no such run, or this graph's structure differs from the recorded one.
            RunBusyError: another live process is executing the run.
            StoreError: the store cannot be read or written.
        """
        from accord._config import configured_store
        from accord.store import begin_resume, drive, resolve_durability, shared_store

        if durability == "off":
            raise ConfigError(
                "graph.resume() records the run's progress: use durability='async' or 'sync'."
            )
        env = os.environ.get("ACCORD_DURABILITY")
        mode = resolve_durability(durability or (env if env != "off" else None))
        target = shared_store(store if store is not None else configured_store())
        plan = self._compile()
        structure_hash, _ = self._drawing(plan)
        record, cached, recorder = begin_resume(
            target,
            run_id,
            graph=plan.name,
            structure_hash=structure_hash,
            mode=mode,
            answers=answers,
        )
        if isinstance(backend, str):
            from accord.backends import backend as resolve

            backend = resolve(backend)
        return await drive(
            recorder,
            execute(
                plan,
                record.task,
                run_id=run_id,
                default_backend=backend,
                until=until,
                max_steps=max_steps or record.max_steps,
                sink=on_event,
                wants_tokens=stream_tokens,
                cache=cached,
                recorder=recorder,
            ),
        )

    def run_sync(
        self, task: str, backend: Backend | str | None = None, **options: Any
    ) -> RunResult:
        """:meth:`run` for code without an event loop (scripts, notebooks without await).

        Every call from one thread runs on the same event loop (an ``asyncio.Runner`` kept per
        thread), so backends keep their HTTP clients and connection pools from one call to the
        next. The loop is closed when the interpreter exits.

        Raises:
            ConfigError: called from a running event loop (``await graph.run(...)`` there).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise ConfigError(
                "graph.run_sync() was called inside a running event loop; use "
                "`await graph.run(...)` there."
            )
        return _runner().run(self.run(task, backend, **options))

    async def stream(
        self,
        task: str,
        backend: Backend | str | None = None,
        *,
        tokens: bool = True,
        **options: Any,
    ) -> AsyncIterator[Any]:
        """Run the graph and yield its events as they happen, ending with ``run_finished``.

        Leaving the loop early cancels the run. A failed run raises after its last event.
        """
        queue: asyncio.Queue[Any] = asyncio.Queue()
        done = object()
        runner = asyncio.create_task(
            self.run(task, backend, on_event=queue.put_nowait, stream_tokens=tokens, **options)
        )
        runner.add_done_callback(lambda _: queue.put_nowait(done))
        try:
            while True:
                item = await queue.get()
                if item is done:
                    break
                yield item
            runner.result()
        finally:
            if not runner.done():
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)

    def _drawing(self, plan: CompiledGraph) -> tuple[str, str]:
        """The structure hash and the drawing (nodes and edges as JSON) the store records."""
        cached = self._recording
        if cached is not None and cached[0] is plan:
            return cached[1], cached[2]
        nodes = [
            {
                "name": name,
                "kind": type(node).__name__,
                "produces": _type_name(node.produces),
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
            default=str,
        )
        found = (plan, self.structure_hash(), topology)
        self._recording = found
        return found[1], found[2]

    # ------------------------------------------------------------------ drawing

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart."""
        from accord.graphs._export import to_mermaid

        return to_mermaid(self)

    def to_dot(self) -> str:
        """The graph in Graphviz DOT."""
        from accord.graphs._export import to_dot

        return to_dot(self)

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, nodes={list(self._nodes)}, edges={len(self._edges)})"


def _check_task(task: Any) -> None:
    if not isinstance(task, str):
        raise ConfigError(f"the task must be a string, not {type(task).__name__}.")
    if not task.isascii():
        try:
            task.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigError(
                f"the task holds a lone surrogate ({task[exc.start]!r} at character {exc.start}), "
                "which is not valid text: it usually comes from decoding bytes with "
                "errors='surrogateescape' or from half of an emoji. Decode the text properly "
                "(or replace it: task.encode('utf-8', 'replace').decode())."
            ) from None


def _recording(store: Any, durability: str | None) -> bool:
    """Whether a run may be recorded (then the store package decides where)."""
    if durability == "off" or (durability is None and os.environ.get("ACCORD_DURABILITY") == "off"):
        return False
    if store is not None:
        return True
    if current_context() is not None:
        return False  # a nested run: the outer activation's record holds its output
    from accord._config import configured_store

    return configured_store() is not None


_local = threading.local()
_runners: list[asyncio.Runner] = []


def _runner() -> asyncio.Runner:
    """This thread's event loop for :meth:`Graph.run_sync` (closed at exit)."""
    runner: asyncio.Runner | None = getattr(_local, "runner", None)
    if runner is None:
        runner = _local.runner = asyncio.Runner()
        _runners.append(runner)
    return runner


@atexit.register
def _close_runners() -> None:
    while _runners:
        try:
            _runners.pop().close()
        except Exception:  # a loop of another thread, or already closed
            pass


class Subgraph:
    """A graph used as one node of another graph: it runs on its inputs' text as its task.

    It runs inside the parent run, not as a run of its own: its activations count against the
    parent's step limit and budgets, stop when the parent is cancelled, are recorded with the
    parent (so resume and replay skip the ones that finished), and appear in events as
    ``outer/inner``. Its message's usage is what its model calls cost.
    """

    def __init__(
        self, graph: Graph, *, name: str | None = None, timeout: float | None = None
    ) -> None:
        self.graph = graph
        self.name = name or graph.name
        self.join: Any = "all"
        self.timeout = timeout
        self.accepts: tuple[type[Payload], ...] | None = None
        produced = {graph.nodes[n].produces for n in graph.exits if n in graph.nodes}
        self.produces: type[Payload] | None = produced.pop() if len(produced) == 1 else None

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        texts = [m.text for m in ctx.inputs]
        result = await run_inner(ctx, self.graph._compile(), "\n\n".join(texts))
        ctx.usage = ctx.usage + result.usage  # already counted in the run, call by call
        out = result.output
        if out is None:
            return NodeOutput(text="")
        return NodeOutput(text=out.text, payload=out.payload)
