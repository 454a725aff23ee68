"""Logit arithmetic decoders: contrastive decoding and proxy-tuning.

Both run every model one step at a time over the same text and choose the next token from a
combination of their next-token distributions (methods.md section 11):

- :class:`Contrastive` (Li et al., ACL 2023): the plausibility head
  V_head = {v : p_exp(v) >= alpha * max_w p_exp(w)}; score log p_exp(v) - log p_ama(v) on V_head
  and -inf elsewhere. With ``beta`` set, the reasoning variant of O'Brien & Lewis (2023):
  (1 + beta) * s_exp - beta * s_ama on V_head (s: logits).
- :class:`ProxyTuned` (Liu et al., COLM 2024): log p_base + alpha * (log p_expert - log p_anti),
  softmax of that; ``alpha`` = 1 is proxy-tuning, other values emulated fine-tuning's scale
  (Mitchell et al., ICLR 2024). Log-probabilities and logits give the same distribution.

Greedy requests take the best score (lowest id on ties); sampled ones draw from the softmax of
the scores with the request's temperature and top-p. The models' forward passes of one step run
at once, each on its model's worker thread. Caveat: models must share one tokenizer; logits are
compared over the smallest vocabulary of the models (padded heads are cut).
"""

from __future__ import annotations

import math
from typing import Any

from accord._lazy import require
from accord.decoding._engine import Batch, CooperativeBackend
from accord.errors import ConfigError

__all__ = ["Contrastive", "ProxyTuned"]


class _Combined(CooperativeBackend):
    """A decoder that combines every model's next-token logits at each step."""

    def combine(self, logits: list[Any]) -> Any:
        """The scores of the next token from each model's logits (same order as the models)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _decode(self, batch: Batch) -> None:
        batch.start()
        everyone = range(len(batch.loaded))
        vocab = batch.vocab
        while True:
            live = batch.live
            chosen: list[list[int]] = [[] for _ in batch.rows]
            for r in live:
                row = batch.rows[r]
                scores = self.combine([batch.states[i].last[r][:vocab] for i in everyone])
                token = row.pick(scores)
                if batch.push(row, token):
                    chosen[r] = [token]
            if not any(chosen):
                return
            batch.feed([(i, chosen) for i in everyone])


class Contrastive(_Combined):
    """Contrastive decoding: an expert penalised by an amateur (module docstring).

    Args:
        expert: the strong model (``HFBackend``, ``"hf:..."`` name or folder); its chat template
            renders the prompt.
        amateur: the weak model of the same family (same tokenizer).
        alpha: plausibility threshold in (0, 1]: only tokens with at least ``alpha`` times the
            expert's top probability can be chosen (0.1 in the paper).
        beta: None for log p_exp - log p_ama; a number for the reasoning variant
            (1 + beta) * s_exp - beta * s_ama (0.5 reported).
        name: the backend name (``contrastive:EXPERT+AMATEUR`` by default).
        max_batch_size, max_wait_ms, max_new_tokens: batching and limits, as ``HFBackend``.

    Raises:
        ConfigError: alpha or beta out of range, a model that is not local; at first use,
            models whose tokenizers differ.

    Example::

        cd = Contrastive("hf:./expert", "hf:./amateur", alpha=0.1)
        agent = accord.Agent("solver", backend=cd, template="{{ task }}")
    """

    def __init__(
        self,
        expert: Any,
        amateur: Any,
        *,
        alpha: float = 0.1,
        beta: float | None = None,
        name: str | None = None,
        max_batch_size: int = 8,
        max_wait_ms: float = 5.0,
        max_new_tokens: int = 512,
    ) -> None:
        if not 0 < alpha <= 1:
            raise ConfigError(f"alpha must be in (0, 1], got {alpha}.")
        if beta is not None and (not math.isfinite(beta) or beta < 0):
            raise ConfigError(f"beta must be a non-negative number or None, got {beta}.")
        super().__init__(
            [("expert", expert), ("amateur", amateur)],
            name=name or "",
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_new_tokens=max_new_tokens,
        )
        self.alpha = alpha
        self.beta = beta
        self.name = name or f"contrastive:{self.models[0].name}+{self.models[1].name}"

    def combine(self, logits: list[Any]) -> Any:
        """Contrastive scores from ``[expert_logits, amateur_logits]`` (1-D, one vocabulary)."""
        torch = require("torch", extra="hf")
        expert, amateur = logits[0].float(), logits[1].float()
        lp_expert = torch.log_softmax(expert, dim=-1)
        head = lp_expert >= lp_expert.max() + math.log(self.alpha)
        if self.beta is None:
            scores = lp_expert - torch.log_softmax(amateur, dim=-1)
        else:
            scores = (1 + self.beta) * expert - self.beta * amateur
        return scores.masked_fill(~head, float("-inf"))


class ProxyTuned(_Combined):
    """Proxy-tuning: a base model steered by a small tuned expert and its untuned twin.

    Args:
        base: the large model (its chat template renders the prompt; its end tokens end the
            text).
        expert: the small tuned model.
        anti_expert: the same small model before tuning.
        alpha: the scale of the steering term (1.0 is proxy-tuning).
        name: the backend name (``proxy:BASE+EXPERT+ANTI`` by default).
        max_batch_size, max_wait_ms, max_new_tokens: batching and limits, as ``HFBackend``.

    Raises:
        ConfigError: a non-finite alpha, a model that is not local; at first use, models whose
            tokenizers differ.

    Example::

        tuned = ProxyTuned("hf:./big-base", "hf:./small-chat", "hf:./small-base")
    """

    def __init__(
        self,
        base: Any,
        expert: Any,
        anti_expert: Any,
        *,
        alpha: float = 1.0,
        name: str | None = None,
        max_batch_size: int = 8,
        max_wait_ms: float = 5.0,
        max_new_tokens: int = 512,
    ) -> None:
        if not math.isfinite(alpha):
            raise ConfigError(f"alpha must be a finite number, got {alpha}.")
        super().__init__(
            [("base", base), ("expert", expert), ("anti-expert", anti_expert)],
            name=name or "",
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_new_tokens=max_new_tokens,
        )
        self.alpha = alpha
        self.name = name or "proxy:" + "+".join(m.name for m in self.models)

    def combine(self, logits: list[Any]) -> Any:
        """log p_base + alpha * (log p_expert - log p_anti) from the three models' logits."""
        torch = require("torch", extra="hf")
        base, expert, anti = (torch.log_softmax(x.float(), dim=-1) for x in logits)
        return base + self.alpha * (expert - anti)
