"""Agent sampling options: top_p reaches every request, is validated, and clone() can change it."""

from __future__ import annotations

import pytest

import accord
from accord.errors import ConfigError
from accord.testing import ScriptedBackend

pytestmark = pytest.mark.usefixtures("no_real_backends")


async def test_agent_top_p_goes_into_every_request_and_none_leaves_the_default() -> None:
    backend = ScriptedBackend({"solver": ["42"], "writer": ["ok"]})

    await accord.Solver("solver", top_p=0.9, temperature=0.7).run("6*7?", backend=backend)
    await accord.Agent("writer").run("x", backend=backend)

    nucleus, default = backend.requests
    assert nucleus.top_p == 0.9 and nucleus.temperature == 0.7
    assert default.top_p is None


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.5, True, "0.9"])
def test_agent_top_p_out_of_range_is_a_config_error_saying_what_to_pass(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"top_p must be a number above 0 and at most 1"):
        accord.Critic("critic", top_p=bad)  # type: ignore[arg-type]


async def test_agent_clone_changes_top_p_and_keeps_the_original() -> None:
    backend = ScriptedBackend({"a": ["x"], "b": ["y"]})
    a = accord.Agent("a", top_p=0.5)
    b = a.clone("b", top_p=1.0)

    await a.run("t", backend=backend)
    await b.run("t", backend=backend)

    assert [(r.agent, r.top_p) for r in backend.requests] == [("a", 0.5), ("b", 1.0)]
    with pytest.raises(ConfigError, match="top_p"):
        a.clone("c", top_p=2)
