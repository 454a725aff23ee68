"""The step of a token-level ensemble: combine next-token distributions, choose, append.

Two loops share one interface (``await loop.step()`` returns the chosen piece or None at the end
of the sequence):

- :class:`SharedLoop`, for models with one tokenizer: p(y) = sum_i w_i p_i(y), the weighted
  average of probabilities over the whole vocabulary (the baseline of methods.md section 7.1);
  the chosen token id is appended to every model.
- :class:`UnionLoop`, for models with different tokenizers, after UniTE (Yao et al.,
  "Determine-Then-Ensemble: Necessity of Top-k Union for Large Language Model Ensembling", ICLR
  2025, arXiv 2410.03777): the candidates are the union of each model's top-k tokens, matched by
  their surface bytes; each model scores a candidate by its probability for that exact token, or
  for the first token of the candidate's re-tokenisation in its own vocabulary; the weighted
  average picks one. A model that proposed the chosen token gets that token id; every other model
  gets the piece's bytes re-tokenised, together with its own last token (which is taken back from
  the KV cache when the two merge), so each model reads the text in its own tokenisation.

Gating (the key-token idea of GaC, arXiv 2406.12585): with ``gate`` set, a step whose primary
(first) model gives its best token at least that probability is decoded by the primary alone; the
other models are not run and catch up in one forward pass at the next combined step. Greedy ties
go to the lowest token id (shared) or the shorter, earlier-proposed candidate (union).

Caveat: a model whose pending bytes are not valid UTF-8 (half a character) and whose tokenizer is
not byte-level cannot read them yet; it sits out the steps until the character completes.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import Any

from accord._lazy import require
from accord.ensemble._lm import Sequence, sync_all
from accord.ensemble._surface import Vocabulary

__all__ = ["Sampler", "SharedLoop", "UnionLoop", "EOS"]

EOS = b"\x00<eos>"
"""The union loop's key for "end of sequence" (never a real surface: surfaces hold no NUL+<)."""


@dataclass
class Sampler:
    """Greedy (temperature 0) or seeded sampling with temperature and top-p."""

    temperature: float = 0.0
    top_p: float = 1.0
    generator: Any = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def pick(self, probs: Any) -> int:
        """An index into ``probs`` (a 1-D tensor of non-negative weights)."""
        torch = require("torch", extra="hf")
        if self.greedy:
            return int(torch.argmax(probs))
        weights = probs.clamp(min=0).pow(1.0 / self.temperature)
        weights = weights / weights.sum()
        if self.top_p < 1.0:
            ordered, order = torch.sort(weights, descending=True)
            keep = torch.cumsum(ordered, 0) - ordered < self.top_p
            keep[0] = True
            trimmed = torch.zeros_like(weights)
            trimmed[order[keep]] = ordered[keep]
            weights = trimmed / trimmed.sum()
        return int(torch.multinomial(weights, 1, generator=self.generator))


class SharedLoop:
    """Weighted probability averaging for models that share one vocabulary."""

    def __init__(
        self,
        sequences: Seq[Sequence],
        weights: Seq[float],
        sampler: Sampler,
        gate: float | None,
    ) -> None:
        self.sequences = list(sequences)
        self.weights = list(weights)
        self.sampler = sampler
        self.gate = gate
        self.eos = frozenset().union(*(s.lm.eos_ids for s in self.sequences))
        self.steps = 0
        self.combined = 0
        self.tokens: list[int] = []
        self.vocab = min(s.lm.vocab_size for s in self.sequences)

    async def step(self) -> int | None:
        """Choose and append one token; returns it, or None when it ends the sequence."""
        torch = require("torch", extra="hf")
        primary = self.sequences[0]
        token: int | None = None
        if self.gate is not None and self.weights[0] > 0:
            await sync_all([primary])
            probs = primary.logprobs.exp()
            if float(probs.max()) >= self.gate:
                token = self.sampler.pick(probs)
        if token is None:
            active = [(s, w) for s, w in zip(self.sequences, self.weights, strict=True) if w > 0]
            await sync_all([s for s, _ in active])
            if len(active) == 1:
                probs = active[0][0].logprobs.exp()
            else:
                probs = torch.zeros(self.vocab)
                for seq, weight in active:
                    probs += weight * seq.logprobs[: self.vocab].exp()
            token = self.sampler.pick(probs)
            self.combined += 1
        self.steps += 1
        for seq in self.sequences:
            seq.append([token])
        if token in self.eos:
            return None
        self.tokens.append(token)
        return token


class _View:
    """One model's view in the union loop: its sequence, vocabulary and unread bytes."""

    def __init__(self, seq: Sequence, vocab: Vocabulary) -> None:
        self.seq = seq
        self.vocab = vocab
        self.pending = b""
        self.own: dict[bytes, int] = {}
        """This step's top-k of this model: surface -> token id."""

    def commit(self) -> bool:
        """Re-tokenise the pending bytes into the sequence; False when they cannot be read yet."""
        if not self.pending:
            return True
        seq, vocab = self.seq, self.vocab
        generated = seq.generated
        last = generated[-1] if generated else None
        tail = vocab.surface(last) if last is not None else None
        if last is not None and tail:
            merged = vocab.encode(tail + self.pending)
            if merged:
                if merged[0] == last:
                    seq.append(merged[1:])
                else:
                    seq.truncate(len(seq.ids) - 1)
                    seq.append(merged)
                self.pending = b""
                return True
        ids = vocab.encode(self.pending)
        if ids is None:
            return False
        seq.append(ids)
        self.pending = b""
        return True

    def probability(self, key: bytes, probs: Any) -> float:
        if key == EOS:
            return float(sum(float(probs[i]) for i in self.seq.lm.eos_ids if i < len(probs)))
        token = self.own.get(key)
        if token is None:
            token = self.vocab.by_surface.get(key)
        if token is None:
            ids = self.vocab.encode(key)
            if not ids:
                return 0.0
            token = ids[0]
        return float(probs[token]) if token < len(probs) else 0.0


class UnionLoop:
    """UniTE-style union of top-k tokens for models with different tokenizers."""

    def __init__(
        self,
        sequences: Seq[Sequence],
        vocabularies: Seq[Vocabulary],
        weights: Seq[float],
        sampler: Sampler,
        gate: float | None,
        top_k: int,
    ) -> None:
        self.views = [_View(s, v) for s, v in zip(sequences, vocabularies, strict=True)]
        self.weights = list(weights)
        self.sampler = sampler
        self.gate = gate
        self.top_k = top_k
        self.steps = 0
        self.combined = 0
        self.pieces: list[bytes] = []

    def _proposals(self, view: _View, probs: Any) -> list[bytes]:
        k = min(self.top_k, probs.shape[0])
        _, ids = probs.topk(k)
        view.own = {}
        keys: list[bytes] = []
        for token in ids.tolist():
            if token in view.seq.lm.eos_ids:
                keys.append(EOS)
                continue
            surface = view.vocab.surface(token)
            if surface:
                view.own.setdefault(surface, token)
                keys.append(surface)
        return keys

    async def _gated(self) -> bytes | None:
        primary = self.views[0]
        if not primary.commit():
            return None
        await sync_all([primary.seq])
        probs = primary.seq.logprobs.exp()
        if float(probs.max()) < (self.gate or 0.0):
            return None
        keys = self._proposals(primary, probs)
        if not keys:
            return None
        if self.sampler.greedy:
            return keys[0]
        torch = require("torch", extra="hf")
        weights = torch.tensor([primary.probability(k, probs) for k in keys])
        return keys[self.sampler.pick(weights)]

    async def step(self) -> bytes | None:
        """Choose one piece; returns its bytes, or None when the sequence ends."""
        torch = require("torch", extra="hf")
        key: bytes | None = None
        proposers: set[int] = set()
        if self.gate is not None and self.weights[0] > 0:
            key = await self._gated()
            if key is not None:
                proposers = {0}
        if key is None:
            active = [i for i, v in enumerate(self.views) if self.weights[i] > 0 and v.commit()]
            if not active:  # nobody can read the pending bytes: let the heaviest model decide
                active = [max(range(len(self.views)), key=lambda i: self.weights[i])]
            await sync_all([self.views[i].seq for i in active])
            dists = {i: self.views[i].seq.logprobs.exp() for i in active}
            order: dict[bytes, int] = {}
            proposed: dict[bytes, set[int]] = {}
            for i in active:
                for candidate in self._proposals(self.views[i], dists[i]):
                    order.setdefault(candidate, len(order))
                    proposed.setdefault(candidate, set()).add(i)
            keys = list(order)
            total = sum(self.weights[i] for i in active)
            scores = [
                sum(self.weights[i] * self.views[i].probability(k, dists[i]) for i in active)
                / total
                for k in keys
            ]
            if self.sampler.greedy:
                best = min(range(len(keys)), key=lambda j: (-scores[j], len(keys[j]), j))
            else:
                best = self.sampler.pick(torch.tensor(scores))
            key = keys[best]
            proposers = proposed[key]
            self.combined += 1
        self.steps += 1
        if key == EOS:
            return None
        for i, view in enumerate(self.views):
            token = view.own.get(key) if i in proposers else None
            if token is not None and not view.pending:
                view.seq.append([token])
            else:
                view.pending += key
        self.pieces.append(key)
        return key
