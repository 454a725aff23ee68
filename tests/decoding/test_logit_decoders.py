"""Contrastive decoding and proxy-tuning against a direct computation from the models' logits."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import ask

from accord.backends.hf import HFBackend
from accord.decoding import Contrastive, ProxyTuned
from accord.errors import ConfigError

torch = pytest.importorskip("torch")


def _logits(backend: HFBackend, ids: list[int]) -> object:
    with torch.inference_mode():
        return backend.hf_model(input_ids=torch.tensor([ids])).logits[0, -1].float()


def test_contrastive_scores_match_the_formula(models: dict[str, Path]) -> None:
    expert = torch.tensor([2.0, 1.0, 0.0, -3.0])
    amateur = torch.tensor([3.0, 0.0, -1.0, -5.0])
    cd = Contrastive(str(models["target"]), str(models["amateur"]), alpha=0.3)
    scores = cd.combine([expert, amateur])
    lp_e, lp_a = torch.log_softmax(expert, -1), torch.log_softmax(amateur, -1)
    p = lp_e.exp()
    for v in range(4):
        if p[v] >= 0.3 * p.max():
            assert float(scores[v]) == pytest.approx(float(lp_e[v] - lp_a[v]), abs=1e-5)
        else:
            assert scores[v] == -math.inf
    # The amateur's favourite (token 0) loses to token 1 once the amateur is subtracted.
    assert int(scores.argmax()) == 1
    reasoning = Contrastive(str(models["target"]), str(models["amateur"]), alpha=0.3, beta=0.5)
    assert float(reasoning.combine([expert, amateur])[1]) == pytest.approx(1.5 * 1.0 - 0.5 * 0.0)


async def test_contrastive_greedy_text_is_the_direct_computation(models: dict[str, Path]) -> None:
    expert, amateur = HFBackend(str(models["target"])), HFBackend(str(models["amateur"]))
    cd = Contrastive(expert, amateur, alpha=0.1)
    await cd.load()
    for prompt in ("abc", "head", "a.b"):
        got = await cd.complete(ask(prompt, max_tokens=10))
        ids = expert.encode(expert.chat_prompt(ask(prompt)))
        text: list[int] = []
        for _ in range(10):
            lp_e = torch.log_softmax(_logits(expert, ids + text), -1)  # type: ignore[arg-type]
            lp_a = torch.log_softmax(_logits(amateur, ids + text), -1)  # type: ignore[arg-type]
            scores = (lp_e - lp_a).masked_fill(lp_e < lp_e.max() + math.log(0.1), -math.inf)
            token = int(scores.argmax())
            if token in expert.eos_token_ids:
                break
            text.append(token)
        assert got.text == expert.decode(text)


async def test_proxy_tuned_greedy_text_is_the_direct_computation(models: dict[str, Path]) -> None:
    base = HFBackend(str(models["target"]))
    expert, anti = HFBackend(str(models["close"])), HFBackend(str(models["stranger"]))
    proxy = ProxyTuned(base, expert, anti, alpha=0.7)
    for prompt in ("abc", "gg.", "bead"):
        got = await proxy.complete(ask(prompt, max_tokens=10))
        ids = base.encode(base.chat_prompt(ask(prompt)))
        text: list[int] = []
        for _ in range(10):
            parts = [
                torch.log_softmax(_logits(m, ids + text), -1)  # type: ignore[arg-type]
                for m in (base, expert, anti)
            ]
            token = int((parts[0] + 0.7 * (parts[1] - parts[2])).argmax())
            if token in base.eos_token_ids:
                break
            text.append(token)
        assert got.text == base.decode(text)
    assert proxy.batches >= 3


async def test_proxy_tuned_with_expert_equal_to_anti_is_the_base(models: dict[str, Path]) -> None:
    base = HFBackend(str(models["target"]))
    same = HFBackend(str(models["stranger"]))
    proxy = ProxyTuned(base, same, same)
    for prompt in ("abc", "fade"):
        alone = await base.complete(ask(prompt, max_tokens=12))
        assert (await proxy.complete(ask(prompt, max_tokens=12))).text == alone.text


def test_logit_decoders_refuse_bad_options(models: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="alpha must be in"):
        Contrastive(str(models["target"]), str(models["amateur"]), alpha=0)
    with pytest.raises(ConfigError, match="beta"):
        Contrastive(str(models["target"]), str(models["amateur"]), beta=-1)
    with pytest.raises(ConfigError, match="finite"):
        ProxyTuned(
            str(models["target"]), str(models["close"]), str(models["amateur"]), alpha=math.inf
        )


async def test_logit_decoders_refuse_mismatched_tokenizers(models: dict[str, Path]) -> None:
    proxy = ProxyTuned(str(models["target"]), str(models["close"]), str(models["other_vocab"]))
    with pytest.raises(ConfigError, match="anti-expert"):
        await proxy.complete(ask("abc", max_tokens=2))
