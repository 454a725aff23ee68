"""Next-token distributions, continuation scores and step-wise decoding (blocking helpers).

These run in :class:`HFBackend`'s worker thread. ``next_token_logprobs`` runs one left-padded
forward pass over all prompts (with ``position_ids`` from the attention mask, so a padded prompt
sees the same positions as alone); ``score`` runs one forward pass over prompt + continuation and
reads the log-probability of each continuation token; :class:`DecodeState` keeps a KV cache so a
token-level ensemble can feed one chosen token at a time. Caveat: prompt and continuation are
tokenized separately, so ``score("ab", "c")`` scores the tokens of "c" after those of "ab", which
may differ from the tokens of "abc".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accord._lazy import require
from accord.backends._hf_load import Loaded
from accord.errors import ConfigError

__all__ = ["DecodeState", "next_token_logprobs", "score_tokens", "start_decoding", "step_decoding"]


def _as_dict(logprobs: Any, top_k: int | None) -> dict[int, float]:
    if top_k is None or top_k >= logprobs.shape[-1]:
        return dict(enumerate(logprobs.tolist()))
    values, ids = logprobs.topk(top_k)
    return dict(zip(ids.tolist(), values.tolist(), strict=True))


def _check_top_k(top_k: int | None) -> None:
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k must be at least 1 (or None for every token), got {top_k}.")


def next_token_logprobs(
    loaded: Loaded, prompts: list[list[int]], top_k: int | None
) -> list[dict[int, float]]:
    """Log-probabilities of the token after each prompt, as ``{token_id: logprob}``.

    Args:
        loaded: the model.
        prompts: token ids, one list per prompt (each non-empty).
        top_k: keep the ``top_k`` most likely tokens; every token when None.
    """
    _check_top_k(top_k)
    if not prompts:
        return []
    if any(not p for p in prompts):
        raise ConfigError("next_token_logprobs needs non-empty prompts.")
    torch = require("torch", extra="hf")
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), loaded.pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = torch.tensor(prompt)
        mask[i, width - len(prompt) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        out = loaded.model(
            input_ids=ids.to(loaded.device),
            attention_mask=mask.to(loaded.device),
            position_ids=positions.to(loaded.device),
            use_cache=False,
        )
        logprobs = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1).cpu()
    return [_as_dict(row, top_k) for row in logprobs]


def score_tokens(loaded: Loaded, prompt: list[int], continuation: list[int]) -> list[float]:
    """Log-probability of each continuation token given the prompt and the tokens before it.

    Raises:
        ConfigError: the prompt is empty and the tokenizer has no BOS to stand in for it.
    """
    if not continuation:
        return []
    if not prompt:
        bos = loaded.tokenizer.bos_token_id
        if bos is None:
            raise ConfigError(
                "score needs a non-empty prompt: this tokenizer has no BOS token to start from."
            )
        prompt = [int(bos)]
    torch = require("torch", extra="hf")
    ids = torch.tensor([prompt + continuation], device=loaded.device)
    with torch.inference_mode():
        logits = loaded.model(input_ids=ids, use_cache=False).logits[0].float()
        logprobs = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
        picked = logprobs.gather(-1, torch.tensor(continuation, device=logits.device)[:, None])
    values: list[float] = picked[:, 0].tolist()
    return values


@dataclass(eq=False)
class DecodeState:
    """A sequence being decoded one token at a time, with its KV cache.

    Made by ``HFBackend.start(prompt)`` and advanced by ``HFBackend.step(state, token_id)``;
    belongs to the backend that made it and is not safe to share between concurrent callers.
    """

    ids: list[int]
    """Every token so far: the prompt, then the tokens stepped in."""
    logprobs: dict[int, float]
    """Next-token log-probabilities after :attr:`ids` (``top_k`` of them when asked)."""
    owner: object = field(repr=False, default=None)
    cache: Any = field(repr=False, default=None)


def _cache_of(out: Any) -> Any:
    """The KV cache of a forward output (``cache`` since transformers 5.24, before that
    ``past_key_values``)."""
    return out["cache"] if "cache" in out else out.get("past_key_values")


def _cache_keyword(model: Any) -> str:
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _last_logprobs(out: Any) -> Any:
    torch = require("torch", extra="hf")
    return torch.log_softmax(out.logits[0, -1, :].float(), dim=-1).cpu()


def start_decoding(
    loaded: Loaded, prompt: list[int], top_k: int | None, owner: object
) -> DecodeState:
    """Run the prompt once, keep its KV cache, and return the first next-token distribution."""
    _check_top_k(top_k)
    if not prompt:
        raise ConfigError("start() needs a non-empty prompt.")
    torch = require("torch", extra="hf")
    with torch.inference_mode():
        out = loaded.model(input_ids=torch.tensor([prompt], device=loaded.device), use_cache=True)
    return DecodeState(
        ids=list(prompt),
        logprobs=_as_dict(_last_logprobs(out), top_k),
        owner=owner,
        cache=_cache_of(out),
    )


def step_decoding(
    loaded: Loaded, state: DecodeState, token: int, top_k: int | None
) -> dict[int, float]:
    """Append ``token`` to the state and return the next distribution (one cached forward)."""
    _check_top_k(top_k)
    torch = require("torch", extra="hf")
    with torch.inference_mode():
        out = loaded.model(
            input_ids=torch.tensor([[token]], device=loaded.device),
            use_cache=True,
            **{_cache_keyword(loaded.model): state.cache},
        )
    state.ids.append(int(token))
    state.cache = _cache_of(out)
    state.logprobs = _as_dict(_last_logprobs(out), top_k)
    return state.logprobs
