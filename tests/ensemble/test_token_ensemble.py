"""TokenEnsemble on tiny random models: known-answer identities, both paths, gating, backend use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import ask

import accord
from accord.ensemble import TokenEnsemble
from accord.errors import ConfigError
from accord.testing import ScriptedBackend

pytestmark = pytest.mark.usefixtures("allow_real")

MAX = 16


@pytest.fixture(scope="module")
def hf(tiny_models: dict[str, Path]) -> dict[str, Any]:
    from accord.backends.hf import HFBackend

    return {name: HFBackend(str(folder)) for name, folder in tiny_models.items()}


async def greedy(backend: Any, text: str = "hello there", max_tokens: int = MAX) -> str:
    completion = await backend.complete(ask(text, max_tokens=max_tokens, temperature=0))
    return completion.text


async def test_token_ensemble_of_one_model_equals_its_greedy_output(hf: dict[str, Any]) -> None:
    ensemble = TokenEnsemble([hf["a"]])
    for prompt in ("hello there", "a different prompt ✓"):
        got = await ensemble.complete(ask(prompt, max_tokens=MAX))
        assert got.text == await greedy(hf["a"], prompt)
        assert ensemble.last is not None and ensemble.last.mode == "shared"


async def test_token_ensemble_of_two_copies_equals_the_model(hf: dict[str, Any]) -> None:
    ensemble = TokenEnsemble([hf["b"], hf["b"]])
    got = await ensemble.complete(ask("hello there", max_tokens=MAX))
    assert got.text == await greedy(hf["b"])


async def test_token_ensemble_weights_one_zero_equal_the_first_model(hf: dict[str, Any]) -> None:
    first, second = await greedy(hf["a"]), await greedy(hf["b"])
    assert first != second  # otherwise the test could not tell the models apart
    got = await TokenEnsemble([hf["a"], hf["b"]], [1, 0]).complete(
        ask("hello there", max_tokens=MAX)
    )
    assert got.text == first
    swapped = TokenEnsemble([hf["a"], hf["b"]], [0, 1])
    assert (await swapped.complete(ask("hello there", max_tokens=MAX))).text == second
    assert swapped.last is not None and swapped.last.forwards[0] == 0


async def test_token_ensemble_of_two_models_combines_both(hf: dict[str, Any]) -> None:
    ensemble = TokenEnsemble([hf["a"], hf["b"]])
    got = await ensemble.complete(ask("hello there", max_tokens=MAX))
    out = ensemble.last
    assert out is not None and out.combined_steps == out.steps
    assert min(out.forwards) >= 1
    assert got.usage.requests == 1 and got.usage.prompt_tokens == sum(out.prompt_tokens)
    assert got.usage.completion_tokens == out.steps


async def test_mixed_tokenizers_take_the_union_path_and_follow_the_weighted_model(
    hf: dict[str, Any],
) -> None:
    bpe, byte = hf["bpe"], hf["a"]
    ensemble = TokenEnsemble([bpe, byte], [1, 0])
    got = await ensemble.complete(ask("hello there", max_tokens=MAX))
    assert ensemble.last is not None and ensemble.last.mode == "union"
    assert got.text == await greedy(bpe)
    other = TokenEnsemble([bpe, byte], [0, 1])
    assert (await other.complete(ask("hello there", max_tokens=MAX))).text == await greedy(byte)


async def test_mixed_tokenizers_combine_both_models_and_stream_the_same_text(
    hf: dict[str, Any],
) -> None:
    ensemble = TokenEnsemble([hf["bpe"], hf["b"]], top_k=5)
    request = ask("def add(a, b):", max_tokens=MAX)
    full = await ensemble.complete(request)
    out = ensemble.last
    assert out is not None and out.mode == "union" and min(out.forwards) >= 2
    chunks = [d async for d in ensemble.stream(request)]
    assert "".join(d.text for d in chunks) == full.text
    assert chunks[-1].finish_reason == full.finish_reason


async def test_union_path_over_one_model_twice_equals_the_model(hf: dict[str, Any]) -> None:
    ensemble = TokenEnsemble([hf["a"], hf["a"]], mode="union")
    got = await ensemble.complete(ask("hello there", max_tokens=MAX))
    assert ensemble.last is not None and ensemble.last.mode == "union"
    assert got.text == await greedy(hf["a"])


async def test_gate_lets_a_confident_primary_decode_alone(hf: dict[str, Any]) -> None:
    gated = TokenEnsemble([hf["a"], hf["b"]], gate=1e-6)
    got = await gated.complete(ask("hello there", max_tokens=MAX))
    assert got.text == await greedy(hf["a"])
    assert gated.last is not None and gated.last.combined_steps == 0
    assert gated.last.forwards[1] == 0
    always = TokenEnsemble([hf["a"], hf["b"]], gate=1.0)
    plain = TokenEnsemble([hf["a"], hf["b"]])
    request = ask("hello there", max_tokens=MAX)
    assert (await always.complete(request)).text == (await plain.complete(request)).text


async def test_gated_union_path_with_a_tiny_gate_follows_the_primary(hf: dict[str, Any]) -> None:
    gated = TokenEnsemble([hf["bpe"], hf["a"]], gate=1e-6)
    got = await gated.complete(ask("hello there", max_tokens=MAX))
    assert got.text == await greedy(hf["bpe"])
    assert gated.last is not None and gated.last.forwards[1] == 0


async def test_stop_strings_cut_the_text(hf: dict[str, Any]) -> None:
    text = await greedy(hf["a"], max_tokens=MAX)
    stop = text[5:7]
    assert stop and text.find(stop) >= 1
    ensemble = TokenEnsemble([hf["a"]])
    got = await ensemble.complete(ask("hello there", max_tokens=MAX, stop=(stop,)))
    assert got.text == text[: text.find(stop)] and got.finish_reason == "stop"


async def test_eos_of_any_model_ends_the_sequence(
    hf: dict[str, Any], tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    import torch

    from accord.backends.hf import HFBackend

    base = hf["a"]
    ids = base.encode(base.chat_prompt(ask("hello there")))
    with torch.inference_mode():
        out = base.hf_model.generate(
            input_ids=torch.tensor([ids]), max_new_tokens=6, do_sample=False, eos_token_id=None
        )
    third = int(out[0, len(ids) + 2])
    folder = tmp_path / "a_eos"
    shutil.copytree(tiny_models["a"], folder)
    config_path = folder / "generation_config.json"
    config = json.loads(config_path.read_text())
    eos = config.get("eos_token_id")
    config["eos_token_id"] = [*(eos if isinstance(eos, list) else [eos]), third]
    config_path.write_text(json.dumps(config))
    stopping = HFBackend(str(folder))
    expected = await greedy(stopping)
    got = await TokenEnsemble([stopping, base], [1, 0]).complete(ask("hello there", max_tokens=MAX))
    assert got.text == expected and got.finish_reason == "stop"
    assert got.usage.completion_tokens == 3


async def test_seeded_sampling_repeats_and_differs_from_greedy(hf: dict[str, Any]) -> None:
    ensemble = TokenEnsemble([hf["a"], hf["b"]])
    request = ask("hello there", max_tokens=MAX, temperature=1.5, seed=3)
    first, again = await ensemble.complete(request), await ensemble.complete(request)
    assert first.text == again.text
    others = {
        (await ensemble.complete(request.model_copy(update={"seed": s}))).text for s in range(4)
    }
    assert len(others) > 1


async def test_token_ensemble_answers_as_an_agents_backend(hf: dict[str, Any]) -> None:
    ensemble = TokenEnsemble([hf["a"], hf["b"]], max_new_tokens=8)
    graph = accord.Graph("g").add(accord.Agent("solver", ensemble))
    result = await graph.run("hello")
    assert ensemble.last is not None and result.text == ensemble.last.text
    assert result.usage.requests == 1
    assert result.usage.completion_tokens == ensemble.last.steps <= 8
    assert result.usage.prompt_tokens == sum(ensemble.last.prompt_tokens)


def test_token_ensemble_rejects_bad_options(hf: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="at least one model"):
        TokenEnsemble([])
    with pytest.raises(ConfigError, match="2 models but 1 weights"):
        TokenEnsemble([hf["a"], hf["b"]], [1])
    with pytest.raises(ConfigError, match="positive sum"):
        TokenEnsemble([hf["a"]], [0])
    with pytest.raises(ConfigError, match="gate"):
        TokenEnsemble([hf["a"]], gate=1.5)
    with pytest.raises(ConfigError, match="local models"):
        TokenEnsemble([ScriptedBackend({})])


async def test_shared_mode_refuses_different_tokenizers(hf: dict[str, Any]) -> None:
    ensemble = TokenEnsemble([hf["a"], hf["bpe"]], mode="shared")
    with pytest.raises(ConfigError, match="vocabularies differ"):
        await ensemble.complete(ask("x", max_tokens=2))


async def test_token_ensemble_batches_concurrent_requests(hf: dict[str, Any]) -> None:
    import asyncio

    ensemble = TokenEnsemble([hf["a"], hf["b"]])
    prompts = ["hello there", "one", "two words", "a third"]
    alone = [(await ensemble.complete(ask(p, max_tokens=MAX))).text for p in prompts]
    decoder = ensemble._decoder
    assert decoder is not None
    before = decoder.batches
    together = await asyncio.gather(*(ensemble.complete(ask(p, max_tokens=MAX)) for p in prompts))
    assert [c.text for c in together] == alone
    assert decoder.batches == before + 1  # four requests, one batched pass per model and step


async def test_token_ensemble_details_belong_to_each_call(hf: dict[str, Any]) -> None:
    import asyncio

    ensemble = TokenEnsemble([hf["a"], hf["b"]])
    short, long = await asyncio.gather(
        ensemble.complete(ask("hello there", max_tokens=3)),
        ensemble.complete(ask("another prompt", max_tokens=MAX)),
    )
    assert [d.text for d in short.details] == [short.text]  # type: ignore[attr-defined]
    assert [d.text for d in long.details] == [long.text]  # type: ignore[attr-defined]
    assert short.details[0].steps <= 3 < long.details[0].steps or long.text == ""  # type: ignore[attr-defined]


async def test_token_ensemble_forward_passes_run_on_the_models_threads(
    hf: dict[str, Any],
) -> None:
    import threading

    seen: set[str] = set()
    model = hf["a"].hf_model
    handle = model.register_forward_pre_hook(lambda *_: seen.add(threading.current_thread().name))
    try:
        gated = TokenEnsemble([hf["a"], hf["b"]], gate=0.5)  # the one-sequence loop
        await gated.complete(ask("hello there", max_tokens=4))
        await TokenEnsemble([hf["a"], hf["b"]]).complete(ask("hello there", max_tokens=4))
    finally:
        handle.remove()
    assert seen and all(name.startswith("accord-hf") for name in seen)
