"""The cooperative decoders as backends: batching, streaming, stops, usage, cancellation, names."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import ask

import accord
from accord.backends.hf import HFBackend
from accord.decoding import Contrastive, ProxyTuned, Speculative
from accord.errors import ConfigError

PROMPTS = ["abc", "head", "bad cafe", "gg.", "bead", "hello", "dab ba", "ace ace", "cab."]


async def test_contrastive_batches_concurrent_requests(models: dict[str, Path]) -> None:
    cd = Contrastive(str(models["target"]), str(models["amateur"]), max_wait_ms=50)
    prompts = ["abc", "head", "fade", "gg."]
    alone = [(await cd.complete(ask(p, max_tokens=12))).text for p in prompts]
    before = cd.batches
    together = await asyncio.gather(*(cd.complete(ask(p, max_tokens=12)) for p in prompts))
    assert [c.text for c in together] == alone
    assert cd.batches == before + 1


async def test_cooperative_stream_matches_complete_and_ends_with_usage(
    models: dict[str, Path],
) -> None:
    spec = Speculative(str(models["target"]), str(models["close"]), k=3)
    whole = await spec.complete(ask("bad cafe", max_tokens=20))
    deltas = [d async for d in spec.stream(ask("bad cafe", max_tokens=20))]
    assert "".join(d.text for d in deltas) == whole.text
    assert len([d for d in deltas if d.text]) > 1
    assert deltas[-1].finish_reason == whole.finish_reason
    assert deltas[-1].usage is not None and deltas[-1].usage.completion_tokens > 0


async def test_cooperative_stop_strings_and_max_tokens(models: dict[str, Path]) -> None:
    target = HFBackend(str(models["target"]))
    spec = Speculative(target, str(models["close"]), k=4)
    texts = {p: (await target.complete(ask(p, max_tokens=30))).text for p in PROMPTS}
    prompt = max(texts, key=lambda p: len(texts[p]))
    full = texts[prompt]
    assert len(full) >= 6
    stop = full[3:5]
    got = await spec.complete(ask(prompt, max_tokens=30, stop=(stop,)))
    assert got.text == full[: full.find(stop)] and got.finish_reason == "stop"
    deltas = spec.stream(ask(prompt, max_tokens=30, stop=(stop,)))
    assert "".join([d.text async for d in deltas]) == got.text
    short = await spec.complete(ask(prompt, max_tokens=4))
    assert short.text == full[:4] and short.finish_reason == "length"
    assert short.usage.completion_tokens == 4


async def test_cooperative_usage_shows_each_model(models: dict[str, Path]) -> None:
    proxy = ProxyTuned(str(models["target"]), str(models["close"]), str(models["stranger"]))
    completion = await proxy.complete(ask("abc", max_tokens=5))
    names = [name for name, _ in completion.usage.by_model]
    assert names == [m.name for m in proxy.models]
    for _, usage in completion.usage.by_model:
        assert usage.prompt_tokens == completion.usage.prompt_tokens
        assert usage.completion_tokens >= completion.usage.completion_tokens - 1
    total = completion.usage + completion.usage
    assert (
        dict(total.by_model)[proxy.models[0].name].prompt_tokens
        == 2 * completion.usage.prompt_tokens
    )


async def test_cooperative_cancellation_stops_the_row(models: dict[str, Path]) -> None:
    spec = Speculative(str(models["long"]), str(models["other_vocab"]), k=2)
    stream = spec.stream(ask("abc", max_tokens=400))
    first = await anext(stream)
    assert first.text
    await stream.aclose()  # the caller goes away mid-generation
    assert spec.stats.emitted < 400
    for _ in range(200):  # the batch notices at its next step and ends
        await asyncio.sleep(0.01)
        if not any(b.pending for b in spec._batchers.values()) and all(
            b._task is None or b._task.done() for b in spec._batchers.values()
        ):
            break
    assert spec.stats.emitted < 200
    after = await spec.complete(ask("abc", max_tokens=3))  # the backend still serves
    assert after.usage.completion_tokens <= 3


async def test_cooperative_cancelled_complete_leaves_others_running(
    models: dict[str, Path],
) -> None:
    cd = Contrastive(str(models["long"]), str(models["other_vocab"]), max_wait_ms=30)
    doomed = asyncio.create_task(cd.complete(ask("abc", max_tokens=400)))
    kept = asyncio.create_task(cd.complete(ask("head", max_tokens=8)))
    await asyncio.sleep(0.1)
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert (await kept).usage.completion_tokens <= 8
    assert cd.batches == 1  # both shared one batch; the cancelled row stopped, the other finished


async def test_backend_names_build_cooperative_decoders(models: dict[str, Path]) -> None:
    t, c, s = (str(models[k]) for k in ("target", "close", "stranger"))
    spec = accord.backend(f"speculative:hf:{t}+hf:{c}", k=3)
    assert isinstance(spec, Speculative) and spec.k == 3
    assert isinstance(accord.backend(f"contrastive:hf:{t}+{s}"), Contrastive)
    proxy = accord.backend(f"proxy:hf:{t}+hf:{c}+hf:{s}", alpha=0.5)
    assert isinstance(proxy, ProxyTuned) and proxy.alpha == 0.5
    assert accord.Speculative is Speculative
    with pytest.raises(ConfigError, match="needs 3 models"):
        accord.backend(f"proxy:hf:{t}+hf:{c}")


async def test_agent_answers_through_a_cooperative_decoder(models: dict[str, Path]) -> None:
    target = HFBackend(str(models["target"]))
    spec = Speculative(target, str(models["close"]), k=3)
    agent = accord.Agent("solver", template="{{ task }}", max_tokens=8)
    result = await agent.run("bead", backend=spec, store=None, durability="off")
    alone = await target.complete(ask("bead", max_tokens=8))
    assert result.text == alone.text
    assert result.usage.by_model  # each model's tokens reach the run's usage
