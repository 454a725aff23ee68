"""Graph validation: one test per rule, all problems in one GraphError (T17), cycles (T18),
edge types (T19a), and no model call before the graph is valid."""

from __future__ import annotations

import pytest

import accord
from accord.errors import ConfigError, GraphError
from accord.testing import ScriptedBackend

pytestmark = pytest.mark.usefixtures("no_real_backends")


def _agents(*names: str) -> list[accord.Agent]:
    return [accord.Agent(n) for n in names]


def _problems(graph: accord.Graph) -> GraphError:
    with pytest.raises(GraphError) as info:
        graph.validate()
    return info.value


@accord.step
def judge(verdict: accord.Verdict) -> accord.Answer:
    return accord.Answer(answer="yes" if verdict.accepted else "no")


# ------------------------------------------------------------------ one test per rule


def test_graph_valid_chain_passes_validation() -> None:
    g = accord.Graph("ok").add(*_agents("a", "b")).connect("a", "b")

    g.validate()

    assert (g.entries, g.exits) == (("a",), ("b",))


def test_graph_without_nodes_is_rejected() -> None:
    err = _problems(accord.Graph("empty"))

    assert "graph 'empty' has no nodes" in str(err)


def test_graph_duplicate_node_names_are_rejected() -> None:
    err = _problems(accord.Graph("g").add(accord.Agent("a"), accord.Critic("a")))

    assert "two nodes are named 'a'" in str(err)
    assert err.nodes == ("a",)


def test_graph_edge_to_unknown_node_is_rejected() -> None:
    err = _problems(accord.Graph("g").add(*_agents("a")).connect("a", "x"))

    assert "edge 'a' -> 'x' names 'x', which is not a node of the graph" in str(err)
    assert err.nodes == ("x",)


def test_graph_unknown_entry_and_exit_names_are_rejected() -> None:
    g = accord.Graph("g").add(*_agents("a", "b")).connect("a", "b")
    g.set_entry("start").set_exit("finish")

    err = _problems(g)

    assert "entry node 'start' is not a node of the graph" in str(err)
    assert "exit node 'finish' is not a node of the graph" in str(err)
    assert {"start", "finish"} <= set(err.nodes)


def test_graph_without_entry_is_rejected() -> None:
    g = accord.Graph("g").add(*_agents("a", "b", "c"))
    g.connect("a", "b").connect("b", "a").connect("b", "c").connect("c", "a").set_exit("c")

    err = _problems(g)

    assert "the graph has no entry" in str(err)
    assert "set_entry" in str(err)


def test_graph_entry_defaults_to_the_head_of_a_bounded_loop() -> None:
    g = accord.Graph("g").add(*_agents("a", "b"))
    g.connect("a", "b").connect("b", "a", max_rounds=2).set_exit("b")

    assert g.entries == ("a",)
    g.validate()


def test_graph_without_exit_is_rejected() -> None:
    g = accord.Graph("g").add(*_agents("a", "b"))
    g.connect("a", "b").connect("b", "a", max_rounds=2).set_entry("a")

    err = _problems(g)

    assert "the graph has no exit" in str(err)
    assert "set_exit" in str(err)


def test_graph_unreachable_node_is_rejected() -> None:
    g = accord.Graph("g").add(*_agents("a", "b", "orphan")).connect("a", "b")
    g.connect("orphan", "orphan", max_rounds=2)

    err = _problems(g)

    assert "node 'orphan' cannot be reached from an entry ('a')" in str(err)
    assert err.nodes == ("orphan",)


def test_graph_dead_end_beside_explicit_exits_is_rejected() -> None:
    g = accord.Graph("g").add(*_agents("a", "stuck", "end"))
    g.connect("a", "stuck").connect("a", "end").set_exit("end")

    err = _problems(g)

    assert "node 'stuck' has no outgoing edge and is not an exit" in str(err)
    assert err.nodes == ("stuck",)


def test_graph_cycle_without_exit_condition_is_rejected_with_its_path() -> None:
    # T18(a)
    g = accord.Graph("debate").add(*_agents("pro", "con"))
    g.connect("pro", "con").connect("con", "pro").set_entry("pro").set_exit("con")

    err = _problems(g)

    assert str(err).startswith("cycle without exit condition: pro -> con -> pro.")
    assert set(err.nodes) == {"pro", "con"}


def test_graph_self_loop_without_bound_is_rejected() -> None:
    g = accord.Graph("g").add(*_agents("start", "a")).connect("start", "a").connect("a", "a")
    g.set_exit("a")

    assert "cycle without exit condition: a -> a" in str(_problems(g))


@pytest.mark.parametrize(
    "option",
    [{"when": lambda m: "again" in m.text}, {"max_rounds": 3}],
    ids=["when", "max_rounds"],
)
def test_graph_cycle_with_condition_or_bound_is_accepted(option: dict[str, object]) -> None:
    g = accord.Graph("g").add(*_agents("pro", "con"))
    g.connect("pro", "con").connect("con", "pro", **option).set_entry("pro").set_exit("con")

    g.validate()


def test_graph_edge_type_mismatch_names_the_edge_and_both_types() -> None:
    # T19(a)
    g = accord.Graph("g").add(accord.Critic("critic"), judge).connect("critic", "judge")

    err = _problems(g)

    assert "edge 'critic' -> 'judge'" in str(err)
    assert "'critic' produces Critique but 'judge' accepts only Verdict" in str(err)
    assert err.nodes == ("critic", "judge")


def test_graph_text_into_a_payload_only_node_is_rejected() -> None:
    g = accord.Graph("g").add(accord.Agent("writer"), judge).connect("writer", "judge")

    assert "'writer' produces text but 'judge' accepts only Verdict" in str(_problems(g))


def test_graph_matching_edge_types_are_accepted() -> None:
    g = accord.Graph("g").add(accord.Verifier("verifier"), judge).connect("verifier", "judge")

    g.validate()


def test_graph_entry_that_accepts_only_payloads_is_rejected() -> None:
    err = _problems(accord.Graph("g").add(judge))

    assert "entry node 'judge' accepts only Verdict, but an entry receives the task text" in str(
        err
    )


# ------------------------------------------------------------------ building errors


def test_graph_add_rejects_what_is_not_a_node() -> None:
    with pytest.raises(ConfigError, match="is not a node"):
        accord.Graph("g").add("solver")


def test_graph_connect_rejects_max_rounds_below_one() -> None:
    with pytest.raises(ConfigError, match="max_rounds must be 1 or more"):
        accord.Graph("g").connect("a", "b", max_rounds=0)


async def test_graph_run_rejects_a_task_that_is_not_a_string() -> None:
    g = accord.Graph("g").add(accord.Agent("a"))

    with pytest.raises(ConfigError, match="the task must be a string"):
        await g.run(["not", "a", "string"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_steps must be 1 or more"):
        await g.run("t", max_steps=0)


# ------------------------------------------------------------------ all together, nothing runs


async def test_graph_reports_every_problem_at_once_and_makes_no_call() -> None:
    # T17: unknown endpoint, unreachable node, dead end, unbounded cycle and a type mismatch,
    # all in one GraphError, before any model call.
    g = accord.Graph("broken").add(*_agents("start", "stuck", "orphan", "loop", "end"), judge)
    g.connect("start", "x").connect("start", "stuck").connect("start", "end")
    g.connect("orphan", "end")
    g.connect("start", "loop").connect("loop", "loop")
    g.connect("end", "judge")
    g.set_entry("start").set_exit("end", "judge", "loop")
    backend = ScriptedBackend({"*": ["reply"] * 10})

    with pytest.raises(GraphError) as info:
        await g.run("t", backend=backend)

    err = info.value
    assert str(err).startswith("graph 'broken' is invalid (5 problems):")
    assert len(err.problems) == 5
    assert {"x", "orphan", "stuck", "loop", "end", "judge"} <= set(err.nodes)
    for fragment in (
        "names 'x'",
        "node 'orphan' cannot be reached",
        "node 'stuck' has no outgoing edge",
        "cycle without exit condition: loop -> loop",
        "'end' produces text but 'judge' accepts only Verdict",
    ):
        assert fragment in str(err)
    assert backend.calls() == 0


async def test_graph_without_entry_reports_other_problems_too() -> None:
    g = accord.Graph("g").add(*_agents("a", "b"))
    g.connect("a", "b").connect("b", "a").connect("a", "x")

    with pytest.raises(GraphError) as info:
        g.validate()

    problems = "\n".join(info.value.problems)
    assert "names 'x'" in problems
    assert "no entry" in problems and "no exit" in problems
    assert "cycle without exit condition" in problems


# ------------------------------------------------------------------ known gaps


def test_graph_node_with_no_path_to_an_exit_is_rejected() -> None:
    g = accord.Graph("g").add(*_agents("s", "a", "b"))
    g.connect("s", "a").connect("a", "b").connect("b", "a", max_rounds=2).set_exit("s")

    with pytest.raises(GraphError, match="'a'"):
        g.validate()


async def test_graph_docstring_critique_loop_runs_without_set_entry() -> None:
    g = accord.Graph("review")
    g.add(accord.Solver("solver"), accord.Critic("critic"))
    g.connect("solver", "critic")
    g.connect("critic", "solver", when=lambda m: not m.payload.approved, max_rounds=3)
    g.set_exit("solver")
    backend = ScriptedBackend({"solver": ["draft"], "critic": ['{"approved": true}']})

    result = await g.run("write a haiku about rain", backend=backend)

    assert result.text == "draft"
