"""The scheduler's pure part: a graph's compiled topology and the step functions over run state.

:class:`CompiledGraph` is built once per graph (and rebuilt when it changes) from a validated graph.
The functions here decide which edges close loops (:func:`plan_edges`), where a message goes
(:func:`deliver`) and which activations are ready (:func:`take_ready`); they touch no event loop,
so they are tested directly.

Loops: which edges are back edges. The rule depends on the graph only, never on the order nodes
or edges were added:

1. Every edge into an entry node is a back edge (an entry's first round is the task).
2. An edge without ``when=`` or ``max_rounds=`` (a *plain* edge) is a forward edge; validation
   requires the plain edges to form no cycle.
3. The *distance* of a node is the length of the shortest path to it from an entry, over all edges
   but those into entries. A conditional or bounded edge ``u -> v`` is a back edge when it lies on
   a cycle and does not lead farther from the entries: ``distance(v) <= distance(u)``. Otherwise
   (it lies on no cycle, or ``v`` is one step farther out than ``u``) it is a forward edge.

So in ``moderator -> d0..dN -> aggregator`` with ``aggregator -> d0..dN`` conditional, the edges
back to the debaters are the loop (the debaters are nearer the moderator than the aggregator is),
and in ``planner -> solver -> critic -> verifier`` with ``critic -> solver`` and ``verifier ->
solver`` conditional, both edges into the solver are. Every node is then reached by a forward edge
(the last edge of a shortest path is forward), and the forward edges must form no cycle: a wiring
where they do (a plain edge that leads back towards the entries while a conditional one leads out)
is refused by ``Graph.validate`` with a :class:`~accord.errors.GraphError` that names the edge and
says how to write it, never run on a guess.

Nodes are ordered (for transcripts, join inputs and ties) by a topological order of the forward
edges, nearest the entries first, then by name (``d2`` before ``d10``).

Readiness rules. An entry node runs round 0 with the task. A node with join ``"all"`` is ready when
every *forward* predecessor has a queued message (it takes one from each, plus any queued back-edge
messages); a node that has already run is also ready when a *back-edge* message arrives (the next
round of a loop). A node with join ``"any"`` runs once per incoming message, in arrival order: its
round numbers (and so its transcript) follow timing, which is why the determinism guarantee is for
``"all"`` joins.

Run state is created lazily: a queue exists only once a message waits on that edge, so a run of a
long chain holds a few small lists, not one queue per edge.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from accord.errors import NodeError
from accord.messages import Message
from accord.runtime._node import Node

__all__ = [
    "EdgeSpec",
    "CompiledGraph",
    "RunState",
    "deliver",
    "take_ready",
    "plan_edges",
    "node_key",
]


@dataclass(frozen=True, slots=True)
class EdgeSpec:
    """One edge: deliver ``src``'s messages to ``dst`` when ``when(message)`` holds and ``dst`` has
    run fewer than ``max_rounds`` times."""

    src: str
    dst: str
    when: Callable[[Message], bool] | None = None
    max_rounds: int | None = None
    back: bool = False


@dataclass(frozen=True, slots=True)
class CompiledGraph:
    """A graph compiled for scheduling (not to be confused with the payload ``accord.Plan``)."""

    name: str
    order: tuple[str, ...]
    """The nodes in canonical order (see module docstring)."""
    nodes: dict[str, Node]
    entries: tuple[str, ...]
    exits: frozenset[str]
    out_edges: dict[str, tuple[EdgeSpec, ...]]
    forward_preds: dict[str, tuple[str, ...]]
    back_preds: dict[str, tuple[str, ...]]
    index: dict[str, int]
    max_steps: int | None = None
    """The graph's own step limit (used when the caller gives none)."""


def node_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key for node names that puts ``d2`` before ``d10``."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", name) if p)


def _sccs(names: Sequence[str], succ: dict[str, list[str]]) -> dict[str, int]:
    """The strongly connected component of every node (an id per component; Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    comp: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for root in names:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, i = work[-1]
            children = succ[node]
            if i < len(children):
                work[-1] = (node, i + 1)
                child = children[i]
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp[member] = index[node]
                    if member == node:
                        break
    return comp


def plan_edges(
    names: Sequence[str],
    entries: Sequence[str],
    edges: Sequence[tuple[str, str, bool]],
) -> tuple[list[bool], tuple[str, ...], list[str]]:
    """Decide which edges are back edges, and the canonical node order (see module docstring).

    Args:
        names: the nodes.
        entries: the entry nodes.
        edges: ``(src, dst, conditional)`` for every edge; ``conditional`` when it has ``when=``
            or ``max_rounds=``.

    Returns:
        ``(back, order, problems)``: whether each edge is a back edge, the nodes in canonical
        order, and the problems that make the wiring ambiguous (empty when it is not).
    """
    starts = set(entries)
    succ: dict[str, list[str]] = {n: [] for n in names}
    for src, dst, _ in edges:
        if dst not in starts:
            succ[src].append(dst)
    far = len(names) + 1
    dist = dict.fromkeys(names, far)
    frontier = [n for n in names if n in starts]
    for n in frontier:
        dist[n] = 0
    while frontier:
        nxt: list[str] = []
        for n in frontier:
            for m in succ[n]:
                if dist[m] == far:
                    dist[m] = dist[n] + 1
                    nxt.append(m)
        frontier = nxt
    comp = _sccs(names, succ)
    back = [
        dst in starts or (cond and comp[src] == comp[dst] and dist[dst] <= dist[src])
        for src, dst, cond in edges
    ]
    problems: list[str] = []
    kinds: dict[tuple[str, str], set[bool]] = {}
    for (src, dst, _), is_back in zip(edges, back, strict=True):
        kinds.setdefault((src, dst), set()).add(is_back)
    for (src, dst), found in kinds.items():
        if len(found) > 1:
            problems.append(
                f"there are two edges {src!r} -> {dst!r}, a plain one and a conditional one that "
                f"closes a loop. Keep one edge {src!r} -> {dst!r}: give it when= and max_rounds= "
                "for a loop, or no condition for a plain hand-over."
            )
    # The forward edges, ordered topologically: nearest the entries first, then by name.
    fsucc: dict[str, list[str]] = {n: [] for n in names}
    indegree = dict.fromkeys(names, 0)
    for (src, dst, _), is_back in zip(edges, back, strict=True):
        if not is_back:
            fsucc[src].append(dst)
            indegree[dst] += 1
    heap = [(dist[n], node_key(n), n) for n in names if not indegree[n]]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        _, _, n = heapq.heappop(heap)
        order.append(n)
        for m in fsucc[n]:
            indegree[m] -= 1
            if not indegree[m]:
                heapq.heappush(heap, (dist[m], node_key(m), m))
    if len(order) < len(names):
        left = {n for n in names if indegree[n]}
        problems.append(_forward_cycle(left, fsucc, edges, back, dist))
        order.extend(sorted(left, key=lambda n: (dist[n], node_key(n))))
    return back, tuple(order), problems


def _forward_cycle(
    left: set[str],
    fsucc: dict[str, list[str]],
    edges: Sequence[tuple[str, str, bool]],
    back: list[bool],
    dist: dict[str, int],
) -> str:
    """Describe a cycle of forward edges among ``left`` and say how to write it."""
    start = min(left, key=node_key)
    path = [start]
    seen = {start: 0}
    node = start
    while True:
        node = min((m for m in fsucc[node] if m in left), key=node_key)
        if node in seen:
            cycle = [*path[seen[node] :], node]
            break
        seen[node] = len(path)
        path.append(node)
    pairs = set(zip(cycle, cycle[1:], strict=False))
    plain_back = sorted(
        {
            (s, d)
            for (s, d, cond), is_back in zip(edges, back, strict=True)
            if not is_back and (s, d) in pairs and not cond and dist[d] <= dist[s]
        }
    )
    closing = plain_back[0] if plain_back else (cycle[-2], cycle[-1])
    s, d = closing
    return (
        f"the loop {' -> '.join(cycle)} has no edge that can close it: a loop is closed by an edge "
        "with when= or max_rounds= that leads back towards the entries, but here the plain edge "
        f"{s!r} -> {d!r} does (it would make {d!r} wait for {s!r} before its first round). Give "
        f"that edge the condition (graph.connect({s!r}, {d!r}, when=..., max_rounds=N)) and make "
        f"the edge into {s!r} on the loop plain, or name the loop's first node with "
        "graph.set_entry(...)."
    )


@dataclass(slots=True)
class RunState:
    """The mutable part of a run the step functions read and write (created lazily)."""

    queues: dict[str, dict[str, list[Message]]] = field(default_factory=dict)
    """Messages waiting at each node, by sender (only nodes and edges that ever held one)."""
    started: dict[str, int] = field(default_factory=dict)
    """Activations started per node (the next activation's round; absent: 0)."""


def new_state(plan: CompiledGraph) -> RunState:
    """The state of a run that has not started."""
    return RunState()


def deliver(plan: CompiledGraph, state: RunState, message: Message) -> list[str]:
    """Queue ``message`` on every out-edge of its sender whose condition and bound allow it.

    Returns the names of the nodes it was queued for, in edge order.
    """
    targets: list[str] = []
    queues = state.queues
    for edge in plan.out_edges[message.sender]:
        dst = edge.dst
        if edge.max_rounds is not None and state.started.get(dst, 0) >= edge.max_rounds:
            continue
        if edge.when is not None:
            try:
                passes = edge.when(message)
            except Exception as exc:
                raise NodeError(
                    f"the when= condition of edge {edge.src!r} -> {dst!r} raised "
                    f"{type(exc).__name__}: {exc} on the message of {edge.src!r} round "
                    f"{message.round}. Make the condition return True or False for every message "
                    "its source can send.",
                    node=edge.src,
                    round=message.round,
                ) from exc
            if not passes:
                continue
        waiting = queues.get(dst)
        if waiting is None:
            queues[dst] = {edge.src: [message]}
        else:
            found = waiting.get(edge.src)
            if found is None:
                waiting[edge.src] = [message]
            else:
                found.append(message)
        targets.append(dst)
    return targets


def take_ready(plan: CompiledGraph, state: RunState, name: str) -> list[tuple[Message, ...]]:
    """Pop the input sets of every activation of ``name`` that is ready now, in order."""
    queues = state.queues.get(name)
    if not queues:
        return []
    node = plan.nodes[name]
    ready: list[tuple[Message, ...]] = []
    if node.join == "any":
        for pred in (*plan.forward_preds[name], *plan.back_preds[name]):
            q = queues.pop(pred, None)
            if q:
                ready.extend((m,) for m in q)
        return ready
    forward = plan.forward_preds[name]
    back = plan.back_preds[name]
    while True:
        if forward:
            for p in forward:
                if not queues.get(p):
                    break
            else:
                inputs = [queues[p].pop(0) for p in forward]
                for p in back:
                    q = queues.pop(p, None)
                    if q:
                        inputs.extend(q)
                ready.append(tuple(inputs))
                continue
        if not back or not (ready or state.started.get(name, 0)):
            return ready  # no back edge, or never ran: a back-edge message cannot start it
        inputs = []
        for p in back:
            q = queues.pop(p, None)
            if q:
                inputs.extend(q)
        if not inputs:
            return ready
        ready.append(tuple(inputs))
