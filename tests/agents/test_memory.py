"""Agent memory belongs to the node: shared agents, and resume sending the same prompts."""

from __future__ import annotations

from pathlib import Path

import pytest

import accord
from accord.backends.base import Request
from accord.ensemble import SampleNode
from accord.errors import ProviderUnavailableError, RunError
from accord.testing import FunctionBackend

pytestmark = pytest.mark.usefixtures("no_real_backends")


def _shared_agent_loop() -> accord.Graph:
    """``x`` and ``y`` wrap one agent and talk to each other for two rounds each."""
    agent = accord.Agent("writer", instructions="You write.")
    g = accord.Graph("pair")
    g.add(SampleNode(agent, name="x"), SampleNode(agent, name="y"))
    g.connect("x", "y")
    g.connect("y", "x", max_rounds=2)
    return g.set_entry("x").set_exit("y")


def _reply(request: Request) -> str:
    return f"{request.agent} round {request.round}"


def _requests(backend: FunctionBackend, node: str) -> list[Request]:
    return sorted((r for r in backend.requests if r.agent == node), key=lambda r: r.round)


async def test_agent_memory_two_nodes_sharing_one_agent_see_only_their_own_prompts() -> None:
    backend = FunctionBackend(_reply)
    await _shared_agent_loop().run("write a poem", backend=backend)

    x0, x1 = _requests(backend, "x")
    y0, y1 = _requests(backend, "y")
    # Each node's second call repeats its own first prompt and reply, nothing of the other's.
    assert x1.messages[1] == x0.messages[-1]
    assert x1.messages[2].content == "x round 0"
    assert y1.messages[1] == y0.messages[-1]
    assert y1.messages[2].content == "y round 0"
    assert '<message from="x"' in y0.messages[-1].content
    assert '<message from="x"' not in x1.messages[1].content


async def test_agent_memory_resume_sends_the_prompts_an_uninterrupted_run_sent(
    tmp_path: Path,
) -> None:
    uninterrupted = FunctionBackend(_reply)
    await _shared_agent_loop().run("write a poem", backend=uninterrupted)

    def failing(request: Request) -> str:
        if request.agent == "x" and request.round == 1:
            raise ProviderUnavailableError("the server went away", provider="fake")
        return _reply(request)

    db = tmp_path / "runs.db"
    with pytest.raises(RunError):
        await _shared_agent_loop().run(
            "write a poem",
            backend=FunctionBackend(failing),
            store=db,
            durability="sync",
            run_id="cut",
        )
    resumed = FunctionBackend(_reply)
    result = await _shared_agent_loop().resume("cut", resumed, store=db, durability="sync")
    assert result.status == "completed"

    sent = {(r.agent, r.round): r.messages for r in uninterrupted.requests}
    again = {(r.agent, r.round): r.messages for r in resumed.requests}
    assert set(again) == {("x", 1), ("y", 1)}
    for key, messages in again.items():
        assert messages == sent[key], key
