"""The scheduler's pure part: a graph's compiled topology and the step functions over run state.

:class:`Plan` is built once per run from a validated graph. The functions here decide where a
message goes (:func:`deliver`) and which activations are ready (:func:`take_ready`); they touch no
event loop, so they are tested directly.

Readiness rules. An entry node runs round 0 with the task. A node with join ``"all"`` is ready when
every *forward* predecessor has a queued message (it takes one from each, plus any queued back-edge
messages); a node that has already run is also ready when a *back-edge* message arrives (the next
round of a loop). A node with join ``"any"`` runs once per incoming message, in arrival order: its
round numbers (and so its transcript) follow timing, which is why the determinism guarantee is for
``"all"`` joins. Back edges are the
edges into entry nodes and the edges that close a cycle in a depth-first walk from the entries, in
insertion order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from accord.messages import Message
from accord.runtime._node import Node

__all__ = ["EdgeSpec", "Plan", "RunState", "deliver", "take_ready", "back_edges"]


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
class Plan:
    """A graph compiled for scheduling."""

    name: str
    order: tuple[str, ...]
    nodes: dict[str, Node]
    entries: tuple[str, ...]
    exits: frozenset[str]
    out_edges: dict[str, tuple[EdgeSpec, ...]]
    forward_preds: dict[str, tuple[str, ...]]
    back_preds: dict[str, tuple[str, ...]]
    index: dict[str, int]


def back_edges(
    order: tuple[str, ...], entries: tuple[str, ...], succ: dict[str, list[str]]
) -> set[tuple[str, str]]:
    """Edges that start a node's next round rather than its first.

    Every edge into an entry node is one (an entry's first round is the task), and so is every
    edge that closes a cycle in a depth-first walk from the entries (then any unvisited node).
    """
    starts = set(entries)
    found: set[tuple[str, str]] = {(u, v) for u in order for v in succ.get(u, []) if v in starts}
    state: dict[str, int] = {}  # 1 on stack, 2 done
    for root in (*entries, *order):
        if root in state:
            continue
        state[root] = 1
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, i = stack[-1]
            children = succ.get(node, [])
            if i < len(children):
                stack[-1] = (node, i + 1)
                child = children[i]
                mark = state.get(child)
                if child in starts and child != root:
                    continue
                if mark == 1:
                    found.add((node, child))
                elif mark is None:
                    state[child] = 1
                    stack.append((child, 0))
            else:
                state[node] = 2
                stack.pop()
    return found


@dataclass(slots=True)
class RunState:
    """The mutable part of a run the step functions read and write."""

    queues: dict[str, dict[str, deque[Message]]] = field(default_factory=dict)
    started: dict[str, int] = field(default_factory=dict)
    """Activations started per node (the next activation's round)."""


def new_state(plan: Plan) -> RunState:
    state = RunState()
    for name in plan.order:
        preds = (*plan.forward_preds[name], *plan.back_preds[name])
        state.queues[name] = {p: deque() for p in preds}
        state.started[name] = 0
    return state


def deliver(plan: Plan, state: RunState, message: Message) -> list[str]:
    """Queue ``message`` on every out-edge of its sender whose condition and bound allow it.

    Returns the names of the nodes it was queued for, in edge order.
    """
    targets: list[str] = []
    for edge in plan.out_edges[message.sender]:
        if edge.max_rounds is not None and state.started[edge.dst] >= edge.max_rounds:
            continue
        if edge.when is not None and not edge.when(message):
            continue
        state.queues[edge.dst][edge.src].append(message)
        targets.append(edge.dst)
    return targets


def take_ready(plan: Plan, state: RunState, name: str) -> list[tuple[Message, ...]]:
    """Pop the input sets of every activation of ``name`` that is ready now, in order."""
    queues = state.queues[name]
    node = plan.nodes[name]
    ready: list[tuple[Message, ...]] = []
    if node.join == "any":
        for pred in (*plan.forward_preds[name], *plan.back_preds[name]):
            q = queues[pred]
            while q:
                ready.append((q.popleft(),))
        return ready
    forward = plan.forward_preds[name]
    back = plan.back_preds[name]
    while True:
        if forward and all(queues[p] for p in forward):
            inputs = [queues[p].popleft() for p in forward]
            for p in back:
                inputs.extend(queues[p])
                queues[p].clear()
            ready.append(tuple(inputs))
            continue
        ran_before = state.started[name] + len(ready) > 0
        if back and ran_before and any(queues[p] for p in back):
            inputs = []
            for p in back:
                inputs.extend(queues[p])
                queues[p].clear()
            ready.append(tuple(inputs))
            continue
        return ready
