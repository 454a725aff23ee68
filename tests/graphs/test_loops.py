"""Loops: which edges are back edges depends on the graph, never on the order it was built in."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import accord
from accord.errors import GraphError, StepLimitError
from accord.testing import FunctionBackend


def _natural_debate(debaters: int, rounds: int, order: int = 0) -> accord.Graph:
    """moderator -> d0..dN -> aggregator, aggregator -> d0..dN while rounds remain, then a verdict.

    ``order`` picks one of several insertion orders of the same nodes and edges.
    """
    names = [f"d{i}" for i in range(debaters)]

    @accord.step
    def moderator(task: str) -> str:
        return f"debate: {task}"

    @accord.step
    def verdict(messages: list[accord.Message]) -> str:
        return "verdict: " + messages[-1].text

    nodes: list[Any] = [
        moderator,
        *(accord.Agent(n, memory=False) for n in names),
        accord.Agent("aggregator", memory=False),
        verdict,
    ]
    edges: list[tuple[str, str, dict[str, Any]]] = []
    for n in names:
        edges.append(("moderator", n, {}))
        edges.append((n, "aggregator", {}))
        edges.append(
            ("aggregator", n, {"when": lambda m: m.round < rounds - 1, "max_rounds": rounds})
        )
    edges.append(("aggregator", "verdict", {"when": lambda m: m.round == rounds - 1}))
    if order % 2:
        nodes.reverse()
    if order >= 2:
        edges.reverse()
    g = accord.Graph("natural_debate").add(*nodes)
    for src, dst, options in edges:
        g.connect(src, dst, **options)
    return g.set_exit("verdict")


def _echo_backend() -> FunctionBackend:
    return FunctionBackend(lambda request: f"{request.agent} says {request.round}")


@pytest.mark.parametrize("debaters", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("rounds", [1, 2, 3, 4])
async def test_natural_debate_runs_the_aggregator_once_per_round_and_gives_one_verdict(
    debaters: int, rounds: int
) -> None:
    for order in range(4):
        g = _natural_debate(debaters, rounds, order)

        result = await g.run("2+2?", _echo_backend())

        senders = [m.sender for m in result.transcript]
        assert senders.count("aggregator") == rounds
        assert senders.count("verdict") == 1
        assert len(result.transcript) == 1 + rounds * (debaters + 1) + 1
        assert [m.round for m in result.transcript if m.sender == "aggregator"] == list(
            range(rounds)
        )
        for m in result.transcript:
            if m.sender == "aggregator":  # one message from every debater of that round
                parents = [p.split("/")[-2:] for p in m.parents]
                assert sorted(parents) == sorted([f"d{i}", str(m.round)] for i in range(debaters))
        assert result.output is not None and result.output.text.startswith("verdict: ")


def test_natural_debate_back_edges_are_the_edges_into_the_debaters() -> None:
    plan = _natural_debate(3, 2)._compile()

    assert {(e.src, e.dst) for edges in plan.out_edges.values() for e in edges if e.back} == {
        ("aggregator", "d0"),
        ("aggregator", "d1"),
        ("aggregator", "d2"),
    }
    assert plan.forward_preds["aggregator"] == ("d0", "d1", "d2")


def test_validate_names_a_plain_edge_that_leads_back_and_says_how_to_write_it() -> None:
    # s -> a is plain, a -> b conditional, b -> a plain: b is only reached through a, yet a would
    # wait for b before its first round.
    g = accord.Graph("g").add(accord.Agent("s"), accord.Agent("a"), accord.Agent("b"))
    g.connect("s", "a").connect("a", "b", when=lambda m: True, max_rounds=2).connect("b", "a")
    g.set_entry("s").set_exit("b")

    with pytest.raises(GraphError) as err:
        g.validate()

    message = str(err.value)
    assert "'b' -> 'a'" in message and "graph.connect('b', 'a', when=" in message


def test_validate_refuses_a_plain_and_a_conditional_edge_between_the_same_nodes() -> None:
    g = accord.Graph("g").add(accord.Agent("s"), accord.Agent("a"), accord.Agent("b"))
    g.connect("s", "a").connect("a", "b", max_rounds=2)
    g.connect("b", "a", when=lambda m: True).connect("b", "a")
    g.set_entry("s").set_exit("b")

    with pytest.raises(GraphError, match="two edges 'b' -> 'a'"):
        g.validate()


# ------------------------------------------------------------------ property: insertion order


def _step(name: str) -> accord.Node:
    def fn(messages: list[accord.Message]) -> str:
        return "+".join(f"{m.sender}{m.round}" for m in messages)

    return accord.step(name=name)(fn)


def _conditions() -> dict[str, Any]:
    return {
        "even": lambda m: m.round % 2 == 0,
        "short": lambda m: len(m.text) < 12,
        "always": lambda m: True,
    }


@st.composite
def _looped_graphs(draw: Any) -> dict[str, Any]:
    size = draw(st.integers(2, 5))
    names = [f"n{i}" for i in range(size)]
    pairs = [(i, j) for i in range(size) for j in range(size) if i != j]
    plain = {(i, i + 1) for i in range(size - 1)}
    plain |= set(draw(st.lists(st.sampled_from([p for p in pairs if p[0] < p[1]]), max_size=3)))
    loops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(pairs),
                st.sampled_from([None, *_conditions()]),
                st.integers(1, 3),
            ),
            min_size=1,
            max_size=3,
            unique_by=lambda t: t[0],
        )
    )
    edges = [(names[i], names[j], None, None) for i, j in sorted(plain)]
    edges += [
        (names[i], names[j], cond, bound) for (i, j), cond, bound in loops if (i, j) not in plain
    ]
    return {
        "names": names,
        "edges": edges,
        "node_order": draw(st.permutations(names)),
        "edge_order": draw(st.permutations(range(len(edges)))),
    }


def _build(names: list[str], edges: list[tuple[str, str, Any, Any]]) -> accord.Graph:
    conditions = _conditions()
    g = accord.Graph("random")
    g.add(*(_step(n) for n in names))
    for src, dst, cond, bound in edges:
        g.connect(src, dst, when=conditions[cond] if cond else None, max_rounds=bound)
    return g.set_entry("n0").set_exit(max(names))


def _outcome(g: accord.Graph) -> tuple[str, list[tuple[str, int, str]]]:
    try:
        g.validate()
    except GraphError:
        return "invalid", []
    try:
        result = asyncio.run(g.run("t", max_steps=60))
    except StepLimitError as exc:
        return "step_limit", [(m.sender, m.round, m.text) for m in exc.result.transcript]
    return result.status, [(m.sender, m.round, m.text) for m in result.transcript]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_looped_graphs())
def test_transcript_is_the_same_for_every_insertion_order(spec: dict[str, Any]) -> None:
    names, edges = spec["names"], spec["edges"]
    first = _outcome(_build(names, edges))
    shuffled = _outcome(_build(spec["node_order"], [edges[i] for i in spec["edge_order"]]))

    assert shuffled == first


def test_transcript_is_the_same_for_all_orders_of_a_critique_loop_with_a_verifier() -> None:
    names = ["planner", "solver", "critic", "verifier"]
    edges: list[tuple[str, str, Any, Any]] = [
        ("planner", "solver", None, None),
        ("solver", "critic", None, None),
        ("critic", "solver", "short", 3),
        ("critic", "verifier", "always", None),
        ("verifier", "solver", "even", 3),
    ]
    outcomes = set()
    for node_order in itertools.permutations(names):
        for edge_order in itertools.islice(itertools.permutations(edges), 0, None, 17):
            g = _build(list(node_order), list(edge_order)).set_entry("planner").set_exit("verifier")
            status, transcript = _outcome(g)
            outcomes.add((status, tuple(transcript)))
    assert len(outcomes) == 1
    assert next(iter(outcomes))[0] == "completed"
