"""The scheduler's pure step functions: where a message goes and which activations are ready."""

from __future__ import annotations

import accord
from accord.messages import Message
from accord.runtime._plan import CompiledGraph, deliver, new_state, plan_edges, take_ready


def _msg(sender: str, text: str = "x", round: int = 0) -> Message:
    return Message(id=f"r/{sender}/{round}", run_id="r", sender=sender, text=text, round=round)


def _plan(graph: accord.Graph) -> CompiledGraph:
    return graph._compile()


def _join_graph(join: str = "all") -> accord.Graph:
    g = accord.Graph("g").add(
        accord.Agent("a"),
        accord.Agent("b"),
        accord.Agent("j", join=join),  # type: ignore[arg-type]
    )
    return g.connect("a", "j").connect("b", "j")


def test_take_ready_join_all_waits_for_one_message_from_each_predecessor() -> None:
    plan = _plan(_join_graph())
    state = new_state(plan)

    deliver(plan, state, _msg("a", "a1"))
    deliver(plan, state, _msg("a", "a2", round=1))
    assert take_ready(plan, state, "j") == []

    deliver(plan, state, _msg("b", "b1"))
    ready = take_ready(plan, state, "j")

    assert [[m.text for m in inputs] for inputs in ready] == [["a1", "b1"]]
    assert take_ready(plan, state, "j") == []  # a2 waits for a second message from b


def test_take_ready_join_any_makes_one_activation_per_message() -> None:
    plan = _plan(_join_graph("any"))
    state = new_state(plan)

    deliver(plan, state, _msg("b", "b1"))
    deliver(plan, state, _msg("a", "a1"))

    assert [[m.text for m in inputs] for inputs in take_ready(plan, state, "j")] == [
        ["a1"],
        ["b1"],
    ]


def _loop() -> accord.Graph:
    g = accord.Graph("loop").add(accord.Agent("s"), accord.Agent("c"))
    g.connect("s", "c").connect("c", "s", when=lambda m: m.text == "again", max_rounds=2)
    return g.set_entry("s").set_exit("s")


def test_back_edge_is_the_edge_that_closes_the_cycle() -> None:
    plan = _plan(_loop())

    assert [e.back for e in plan.out_edges["c"]] == [True]
    assert plan.forward_preds["s"] == () and plan.back_preds["s"] == ("c",)
    assert plan_edges(("s", "c"), ("s",), [("s", "c", False), ("c", "s", True)])[0] == [
        False,
        True,
    ]


def test_deliver_checks_the_condition_then_the_bound() -> None:
    plan = _plan(_loop())
    state = new_state(plan)
    state.started["s"] = 1

    assert deliver(plan, state, _msg("c", "done")) == []
    assert deliver(plan, state, _msg("c", "again")) == ["s"]
    state.started["s"] = 2
    assert deliver(plan, state, _msg("c", "again", round=1)) == []


def test_take_ready_back_edge_message_starts_the_next_round_of_a_node_that_ran() -> None:
    plan = _plan(_loop())
    state = new_state(plan)

    deliver(plan, state, _msg("c", "again"))
    assert take_ready(plan, state, "s") == []  # s never ran: a back edge alone does not start it

    state.started["s"] = 1
    ready = take_ready(plan, state, "s")

    assert [[m.text for m in inputs] for inputs in ready] == [["again"]]


def test_run_state_creates_queues_only_for_edges_that_hold_a_message() -> None:
    g = accord.Graph("chain").add(*(accord.Agent(f"n{i}") for i in range(10)))
    for i in range(9):
        g.connect(f"n{i}", f"n{i + 1}")
    plan = _plan(g)
    state = new_state(plan)

    assert state.queues == {} and state.started == {}
    deliver(plan, state, _msg("n0"))
    assert list(state.queues) == ["n1"] and list(state.queues["n1"]) == ["n0"]


def test_canonical_order_does_not_depend_on_insertion_order() -> None:
    names = ["d10", "d2", "moderator", "d1"]
    g = accord.Graph("g").add(*(accord.Agent(n) for n in names))
    for n in names[:2] + names[3:]:
        g.connect("moderator", n)

    plan = _plan(g)

    assert plan.order == ("moderator", "d1", "d2", "d10")
    assert plan.entries == ("moderator",)
