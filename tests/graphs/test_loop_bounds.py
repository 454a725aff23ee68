"""What ``graph.connect(..., max_rounds=N)`` counts: runs of the edge's destination (documented in
``Graph.connect`` and the README's loop section, where an off-by-one is easy)."""

from __future__ import annotations

import pytest

import accord
from accord.testing import ScriptedBackend

pytestmark = pytest.mark.usefixtures("no_real_backends")

NEVER = '{"approved": false, "issues": ["again"]}'


async def test_connect_max_rounds_on_the_back_edge_bounds_the_solver_runs_not_revisions() -> None:
    # The documented example: solver -> critic -> solver with max_rounds=3 on the back edge.
    backend = ScriptedBackend({"solver": ["d1", "d2", "d3", "d4"], "critic": [NEVER] * 4})
    g = accord.Graph("loop").add(accord.Solver("solver"), accord.Critic("critic"))
    g.connect("solver", "critic")
    g.connect("critic", "solver", when=lambda m: not m.payload.approved, max_rounds=3)

    result = await g.set_entry("solver").set_exit("solver").run("x", backend)

    # 3 solver runs = 1 draft + 2 revisions; the critic reviews each draft, and its third
    # critique is not delivered because the solver has already started 3 times.
    assert [m.sender for m in result.transcript] == ["solver", "critic"] * 3
    assert [m.round for m in result.transcript if m.sender == "solver"] == [0, 1, 2]
    assert result.text == "d3"


async def test_connect_max_rounds_counts_every_run_of_the_destination() -> None:
    # On a forward edge the bound counts the destination's first run too: max_rounds=2 on
    # solver -> critic lets the critic run twice, whatever bound the back edge has.
    backend = ScriptedBackend({"solver": ["d1", "d2", "d3", "d4"], "critic": [NEVER] * 4})
    g = accord.Graph("loop").add(accord.Solver("solver"), accord.Critic("critic"))
    g.connect("solver", "critic", max_rounds=2)
    g.connect("critic", "solver", max_rounds=5)

    result = await g.set_entry("solver").set_exit("solver").run("x", backend)

    assert [m.sender for m in result.transcript] == ["solver", "critic"] * 2 + ["solver"]
    assert backend.calls("critic") == 2 and backend.calls("solver") == 3
