"""Drawing graphs: Mermaid and Graphviz DOT output shape."""

from __future__ import annotations

import accord


def _review() -> accord.Graph:
    g = accord.Graph("review").add(
        accord.Planner("planner"), accord.Solver("solver"), accord.Critic("critic")
    )
    g.connect("planner", "solver").connect("solver", "critic")
    g.connect("critic", "solver", when=lambda m: not m.payload.approved, max_rounds=3)
    return g.set_exit("critic")


def test_to_mermaid_draws_nodes_by_role_and_edges_by_kind() -> None:
    assert _review().to_mermaid() == (
        "flowchart TD\n"
        '    planner(["planner<br/><small>Planner</small>"])\n'
        '    solver["solver<br/><small>Solver</small>"]\n'
        '    critic[["critic<br/><small>Critic</small>"]]\n'
        "    planner --> solver\n"
        "    solver --> critic\n"
        "    critic -.->|when ≤3| solver\n"
    )


def test_to_mermaid_labels_a_bounded_edge_without_condition_solid() -> None:
    g = accord.Graph("g").add(accord.Agent("a"), accord.Agent("b"))
    g.connect("a", "b").connect("b", "a", max_rounds=2).set_entry("a").set_exit("b")

    assert "    b -->|≤2| a\n" in g.to_mermaid()


def test_to_mermaid_makes_node_ids_safe_and_quotes_labels() -> None:
    g = accord.Graph("g").add(accord.Agent('critic "b"-2'), accord.Agent("next one"))
    g.connect('critic "b"-2', "next one")

    text = g.to_mermaid()

    assert "critic__b__2([\"critic 'b'-2<br/><small>Agent</small>\"])" in text
    assert "critic__b__2 --> next_one" in text


def test_to_dot_draws_entries_bold_exits_double_and_conditions_dashed() -> None:
    assert _review().to_dot() == (
        'digraph "review" {\n'
        "    rankdir=TB;\n"
        "    node [shape=box, style=rounded];\n"
        '    "planner" [label="planner\\n(Planner)", penwidth=2];\n'
        '    "solver" [label="solver\\n(Solver)"];\n'
        '    "critic" [label="critic\\n(Critic)", peripheries=2];\n'
        '    "planner" -> "solver";\n'
        '    "solver" -> "critic";\n'
        '    "critic" -> "solver" [label="when ≤3", style=dashed];\n'
        "}\n"
    )


def test_to_dot_node_that_is_entry_and_exit_gets_both_marks() -> None:
    g = accord.Graph("solo").add(accord.Agent("only"))

    assert '"only" [label="only\\n(Agent)", penwidth=2, peripheries=2];' in g.to_dot()


def test_export_draws_a_step_and_a_subgraph_by_their_kind() -> None:
    @accord.step
    def tally(task) -> str:
        return task

    inner = accord.Graph("inner").add(accord.Agent("a"))
    g = accord.Graph("outer").add(tally, inner).connect("tally", "inner")

    assert '"tally" [label="tally\\n(Step)", penwidth=2];' in g.to_dot()
    assert '    inner[["inner<br/><small>Subgraph</small>"]]' in g.to_mermaid()
