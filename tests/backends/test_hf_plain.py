"""Local models as they come: plain completion prompts, one agent on its own, seeded batches."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _hf_fixtures import allow_real, ask, plain_dir, tiny_dir

import accord
from accord.backends.hf import HFBackend
from accord.testing import FunctionBackend

__all__ = ["allow_real", "plain_dir", "tiny_dir"]  # fixtures used by name

pytestmark = pytest.mark.usefixtures("allow_real")


async def test_agent_with_raw_template_sends_exactly_the_task() -> None:
    backend = FunctionBackend(lambda request: "0579")
    agent = accord.Agent("adder", template="{{ task }}")
    result = await agent.run("123+456=", backend=backend, store=None, durability="off")
    assert [(m.role, m.content) for m in backend.requests[0].messages] == [("user", "123+456=")]
    assert isinstance(result, accord.RunResult) and result.text == "0579"


async def test_agent_run_reads_exactly_the_task_on_a_plain_model(plain_dir: Path) -> None:
    backend = HFBackend(str(plain_dir))
    agent = accord.Agent("adder", template="{{ task }}", max_tokens=3)
    result = await agent.run("123+456=", backend=backend, store=None, durability="off")
    assert result.usage.prompt_tokens == len(backend.encode("123+456="))
    direct = await backend.complete(ask("123+456=", max_tokens=3))
    assert result.text == direct.text


async def test_seeded_requests_share_one_batch_and_repeat(tiny_dir: Path) -> None:
    backend = HFBackend(str(tiny_dir), max_wait_ms=50)
    requests = [ask("hello", temperature=0.8, seed=seed, max_tokens=10) for seed in range(6)]
    alone = [(await backend.complete(r)).text for r in requests]
    batches = backend.stats.batches
    together = await asyncio.gather(*(backend.complete(r) for r in requests))
    assert backend.stats.batches == batches + 1  # six seeded requests, one generate() call
    assert [c.text for c in together] == alone  # each seed gives its own text, batched or not
    assert len(set(alone)) > 1


async def test_seeded_requests_with_other_settings_share_a_batch(tiny_dir: Path) -> None:
    backend = HFBackend(str(tiny_dir), max_wait_ms=50)
    a = ask("hello", temperature=0.5, seed=1, max_tokens=6)
    b = ask("other", temperature=1.2, top_p=0.9, seed=2, max_tokens=6, n=2)
    alone = [(await backend.complete(r)).choices for r in (a, b)]
    batches = backend.stats.batches
    together = await asyncio.gather(backend.complete(a), backend.complete(b))
    assert backend.stats.batches == batches + 1
    assert [c.choices for c in together] == alone
