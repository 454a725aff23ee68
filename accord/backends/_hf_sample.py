"""Seeded sampling with one random generator per row, so seeded requests can share a batch.

``generate()`` samples every row from torch's one global generator, so a seeded request used to
run alone (the seed fixed the global generator for the whole call). :class:`RowSampler` is a
logits processor that draws each row's token from that row's own ``torch.Generator`` (with the
row's temperature, the model's ``top_k`` and the row's top-p, in the order ``generate()`` applies
them) and turns the scores into a one-hot choice that greedy search then takes. A row's tokens
depend only on its seed and its own logits, whatever else shares the batch.

:func:`row_seed` gives the seed of the ``j``-th candidate of a request seeded with ``seed``
(``seed`` itself for the first). Caveat: a seeded request's samples differ from what the same seed
gave before per-row generators (the random stream is another), but they repeat run after run.
"""

from __future__ import annotations

from typing import Any

from accord._lazy import require

__all__ = ["RowSampler", "row_seed", "sample_from", "warp"]


def row_seed(seed: int, index: int) -> int:
    """The seed of candidate ``index`` of a request seeded with ``seed``."""
    return seed if index == 0 else (seed * 1_000_003 + index) % (2**63)


def warp(scores: Any, temperature: float, top_k: int | None, top_p: float) -> Any:
    """Sampling probabilities from 1-D logits: temperature, then top-k, then top-p (nucleus)."""
    torch = require("torch", extra="hf")
    logits = scores.float() / max(temperature, 1e-6)
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        ordered, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(ordered, 0) - ordered < top_p
        keep[0] = True
        trimmed = torch.zeros_like(probs)
        trimmed[order[keep]] = ordered[keep]
        probs = trimmed / trimmed.sum()
    return probs


def sample_from(probs: Any, generator: Any) -> int:
    """One token id drawn from ``probs`` with ``generator`` (on the CPU, so seeds repeat)."""
    torch = require("torch", extra="hf")
    return int(torch.multinomial(probs.detach().float().cpu(), 1, generator=generator))


class RowSampler:
    """A ``generate()`` logits processor: each row samples with its own generator and settings.

    Args:
        seeds: one seed per row.
        temperatures: one temperature per row.
        top_ps: one top-p per row.
        top_k: the model's top-k (None for none), applied to every row.
    """

    def __init__(
        self,
        seeds: list[int],
        temperatures: list[float],
        top_ps: list[float],
        top_k: int | None,
    ) -> None:
        torch = require("torch", extra="hf")
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        self.temperatures = temperatures
        self.top_ps = top_ps
        self.top_k = top_k

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        chosen = scores.new_full(scores.shape, float("-inf"))
        for row, generator in enumerate(self.generators):
            probs = warp(scores[row], self.temperatures[row], self.top_k, self.top_ps[row])
            chosen[row, sample_from(probs, generator)] = 0.0
        return chosen
