"""Batched decoding for :class:`~accord.ensemble.TokenEnsemble`'s shared-vocabulary path.

When every model reads one tokenizer and no gate is set, a ``TokenEnsemble`` answers requests
through :class:`SharedAverage`, a cooperative decoder (:mod:`accord.decoding`) whose step takes the
weighted average of the models' next-token probabilities, p(y) = sum_i w_i p_i(y), and picks from
it (greedy: the most likely, lowest id on ties; sampled: temperature and top-p with one generator
per row). Concurrent requests then share forward passes as they do in ``HFBackend``: one batched
pass per model and step, every model on its own worker thread. Each completion carries its own
:class:`~accord.ensemble._token.EnsembleOutput` per candidate.

Caveat: the prompt is rendered with the first model's chat template (the models share a
tokenizer); mixed tokenizers and gated ensembles keep the one-sequence loop of
:mod:`accord.ensemble._token_loop`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from accord._lazy import require
from accord.backends.base import Choice, Completion
from accord.backends.hf import Pending
from accord.decoding import CombinedLogits as _Combined
from accord.decoding import Row
from accord.messages import Usage

__all__ = ["SharedAverage"]


class SharedAverage(_Combined):
    """Weighted probability averaging over models that share one vocabulary, batched.

    Args:
        models: the ``HFBackend`` models with a positive weight.
        weights: their weights (normalised).
        name: the ensemble's name.
        finish: builds the ensemble's completion from a request's rows.
        max_new_tokens: the limit for requests without ``max_tokens``.
    """

    def __init__(
        self,
        models: Sequence[Any],
        weights: Sequence[float],
        *,
        name: str,
        finish: Callable[[Pending, list[Row]], Completion],
        max_new_tokens: int,
    ) -> None:
        super().__init__(
            [(f"member {i + 1}", m) for i, m in enumerate(models)],
            name=name,
            max_new_tokens=max_new_tokens,
        )
        total = sum(weights)
        self.weights = [w / total for w in weights]
        self._finish = finish

    def combine(self, logits: list[Any]) -> Any:
        """log of the weighted average of the models' probabilities."""
        torch = require("torch", extra="hf")
        if len(logits) == 1:
            return torch.log_softmax(logits[0].float(), dim=-1)
        mixed = sum(
            w * torch.softmax(x.float(), dim=-1) for w, x in zip(self.weights, logits, strict=True)
        )
        return torch.log(mixed)

    def texts(self, rows: list[Row]) -> None:
        """Decode each row's text (rows not cut at a stop string)."""
        decode = self.models[0]._ensure_loaded().decode
        for row in rows:
            if not row.cut:
                row.text = decode(row.tokens)

    def _completion(self, item: Pending, rows: list[Row]) -> Completion:
        self.texts(rows)
        return self._finish(item, rows)


def choices_of(item: Pending, rows: list[Row]) -> tuple[Choice, ...]:
    """One choice per row (``n`` copies of a greedy row)."""
    choices = tuple(Choice(text=row.text, finish_reason=row.finish) for row in rows)
    return choices * item.request.n if item.rows < item.request.n else choices


def usage_of(rows: list[Row], names: Sequence[str], models: int) -> Usage:
    """The ensemble's usage: one request, every model's prompt tokens, the generated tokens."""
    prompt = len(rows[0].prompt)
    by_model = tuple(
        (
            name,
            Usage(
                requests=1,
                prompt_tokens=prompt,
                completion_tokens=sum(r.fed[i] for r in rows) - prompt * len(rows),
            ),
        )
        for i, name in enumerate(names)
    )
    return Usage(
        requests=1,
        prompt_tokens=prompt * models,
        completion_tokens=sum(row.counted for row in rows),
        by_model=by_model,
    )
