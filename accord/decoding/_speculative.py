"""Speculative decoding: a small draft proposes tokens, the target checks them in one pass.

Each round, the draft proposes ``k`` tokens one at a time; the target runs its pending token and
the ``k`` proposals in one forward pass and so knows its own distribution before each of them
(Leviathan et al., ICML 2023; Chen et al., 2023; methods.md section 9.1):

- greedy requests accept proposals while they equal the target's argmax, then take the target's
  argmax: the text is the target's own greedy text, token for token;
- sampled requests accept proposal x with probability min(1, p(x) / q(x)) (p the target's and q
  the draft's distribution, both after the request's temperature and top-p); at the first
  rejection they sample from norm(max(0, p - q)); when all are accepted they sample a bonus token
  from p. The output is distributed exactly as the target's own samples.

The target's cache keeps the accepted tokens only (rejected positions become holes, see
:mod:`accord.decoding._rows`); the draft catches up on the accepted text at the start of its next
round. With ``adaptive=True`` the draft length follows acceptance, as transformers' "heuristic"
schedule does: +2 after a round whose proposals were all accepted (up to ``max_k``), -1 after
one with a rejection, and never above the length that promises the most tokens per second
given the measured acceptance rate and the two models' measured pass times (expected tokens per
round (1 - a^(k+1)) / (1 - a) over one target pass and k draft passes); down to 0, where the
target decodes alone and a 1-token draft is tried
after ``probe`` rounds (the wait doubles after each failed try, up to 8 times ``probe``); the
length carries over to the next batch. A bad draft then costs
little. :attr:`Speculative.stats` counts rounds,
proposals and accepted tokens.

Caveat: both models must share one tokenizer (checked at first use); a batch shares one draft
length, so rows of one batch grow and shrink ``k`` together.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from accord._lazy import require
from accord.backends.hf import sample_from
from accord.decoding._engine import Batch, CooperativeBackend
from accord.errors import ConfigError

__all__ = ["Speculative", "SpeculativeStats"]

TARGET, DRAFT = 0, 1


@dataclass
class SpeculativeStats:
    """Counters of a :class:`Speculative` backend's work (read them; do not write them)."""

    verifications: int = 0
    """Target passes that checked a row's proposals (one per row and round)."""
    drafted: int = 0
    """Tokens the draft proposed."""
    accepted: int = 0
    """Proposals the target accepted."""
    emitted: int = 0
    """Tokens produced (accepted proposals plus the target's own token of each round)."""
    target_forwards: int = 0
    draft_forwards: int = 0

    @property
    def acceptance_rate(self) -> float:
        """Accepted proposals over proposals (0 when none were made)."""
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def mean_accepted(self) -> float:
        """Tokens produced per verification (accepted proposals + 1)."""
        return self.emitted / self.verifications if self.verifications else 0.0


class _Costs:
    """Running estimates for adaptive k: acceptance rate and seconds per pass of each model."""

    def __init__(self) -> None:
        self.accepted = 0.0
        self.rejected = 0.0
        self.t_target: float | None = None
        self.t_draft: float | None = None

    @staticmethod
    def _mix(old: float | None, new: float) -> float:
        return new if old is None else 0.8 * old + 0.2 * new

    def target(self, seconds: float) -> None:
        self.t_target = self._mix(self.t_target, seconds)

    def draft(self, seconds: float) -> None:
        self.t_draft = self._mix(self.t_draft, seconds)

    def verdict(self, taken: int, *, rejected: bool) -> None:
        self.accepted = 0.9 * self.accepted + taken
        self.rejected = 0.9 * self.rejected + (1 if rejected else 0)

    def best_k(self, max_k: int) -> int:
        """The draft length with the most expected tokens per second (0: the target alone).

        Expected tokens per round with per-token acceptance a: (1 - a^(k+1)) / (1 - a)
        (Leviathan et al.), against the cost of one target pass and k draft passes.
        """
        if self.t_target is None or self.t_draft is None or self.accepted + self.rejected < 2:
            return max_k
        a = self.accepted / (self.accepted + self.rejected)
        best, best_rate = 0, 1.0 / self.t_target
        for k in range(1, max_k + 1):
            tokens = k + 1.0 if a >= 1.0 else (1 - a ** (k + 1)) / (1 - a)
            rate = tokens / (self.t_target + k * self.t_draft)
            if rate > best_rate:
                best, best_rate = k, rate
        return best


class Speculative(CooperativeBackend):
    """Speculative decoding over a target and a draft model (module docstring).

    Args:
        target: the large model (``HFBackend``, ``"hf:..."`` name or folder); its chat template
            renders the prompt and its distribution is the output's.
        draft: the small model with the same tokenizer.
        k: tokens the draft proposes per round (the start value when adaptive).
        adaptive: grow ``k`` after fully accepted rounds and shrink it after rejections.
        max_k: the largest draft length when adaptive.
        probe: with ``k`` shrunk to 0, try a 1-token draft every ``probe`` rounds.
        name: the backend name (``speculative:TARGET+DRAFT`` by default).
        max_batch_size, max_wait_ms, max_new_tokens: batching and limits, as ``HFBackend``.

    Raises:
        ConfigError: k, max_k or probe out of range, a model that is not local; at first use,
            models whose tokenizers differ.

    Example::

        fast = Speculative("hf:./big", "hf:./small", k=6, adaptive=True)
        agent = accord.Agent("writer", backend=fast)
    """

    def __init__(
        self,
        target: Any,
        draft: Any,
        *,
        k: int = 4,
        adaptive: bool = False,
        max_k: int = 16,
        probe: int = 8,
        name: str | None = None,
        max_batch_size: int = 8,
        max_wait_ms: float = 5.0,
        max_new_tokens: int = 512,
    ) -> None:
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}.")
        if max_k < k:
            raise ConfigError(f"max_k must be at least k ({k}), got {max_k}.")
        if probe < 1:
            raise ConfigError(f"probe must be at least 1, got {probe}.")
        super().__init__(
            [("target", target), ("draft", draft)],
            name=name or "",
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            max_new_tokens=max_new_tokens,
        )
        self.k = k
        self.adaptive = adaptive
        self.max_k = max_k
        self.probe = probe
        self.name = name or f"speculative:{self.models[0].name}+{self.models[1].name}"
        self.stats = SpeculativeStats()
        self._k_now = k
        self._wait = probe
        self._costs = _Costs()

    def _next_k(self, k: int, full: bool) -> int:
        if not self.adaptive:
            return self.k
        return min(k + 2, self.max_k) if full else max(k - 1, 0)

    def _decode(self, batch: Batch) -> None:
        batch.start()
        rows, stats, vocab = batch.rows, self.stats, batch.vocab
        target, draft = batch.states[TARGET], batch.states[DRAFT]
        stats.target_forwards += 1
        stats.draft_forwards += 1
        pend_t: list[list[int]] = [[] for _ in rows]
        pend_d: list[list[int]] = [[] for _ in rows]
        k, idle = (self._k_now if self.adaptive else self.k), 0
        while True:
            live = batch.live
            if not live:
                self._k_now = k
                return
            here = set(live)
            size = k
            if size == 0:
                idle += 1
                if idle >= self._wait:
                    size, idle = 1, 0
            proposals: list[list[int]] = [[] for _ in rows]
            qs: list[list[Any]] = [[] for _ in rows]
            clock = time.perf_counter()
            if size:
                catch_up = [pend_d[r] if r in here else [] for r in range(len(rows))]
                if any(catch_up):
                    batch.feed([(DRAFT, catch_up)])
                    stats.draft_forwards += 1
                for j in range(size):
                    for r in live:
                        logits = draft.last[r][:vocab]
                        if rows[r].greedy:
                            proposals[r].append(int(logits.argmax()))
                        else:
                            q = rows[r].probs(logits)
                            qs[r].append(q)
                            proposals[r].append(sample_from(q, rows[r].generator))
                    if j < size - 1:
                        batch.feed([(DRAFT, [[p[-1]] if p else [] for p in proposals])])
                        stats.draft_forwards += 1
                pend_d = [[] for _ in rows]
            drafting = time.perf_counter() - clock
            before = list(target.last)
            fed = [pend_t[r] + proposals[r] if r in here else [] for r in range(len(rows))]
            clock = time.perf_counter()
            out = batch.feed([(TARGET, fed)])[0]
            self._costs.target(time.perf_counter() - clock)
            if size:
                self._costs.draft(drafting / size)
            stats.target_forwards += 1
            full = True
            for r in live:
                row = rows[r]
                dists = [before[r]] if not pend_t[r] else []
                got = out[r] if out[r] is not None else []
                dists += list(got[max(len(pend_t[r]) - 1, 0) :])
                taken, nxt = self._verify(row, proposals[r], qs[r], dists, vocab)
                full = full and taken == size
                if size:
                    self._costs.verdict(taken, rejected=taken < size)
                stats.verifications += 1
                stats.drafted += size
                stats.accepted += taken
                for token in [*proposals[r][:taken], nxt]:
                    stats.emitted += 1
                    if not batch.push(row, token):
                        break
                target.reject(r, size - taken)
                if size:
                    draft.reject(r, (size - 1) - min(taken, size - 1))
                    pend_d[r] = ([proposals[r][-1]] if taken == size else []) + [nxt]
                else:
                    pend_d[r].append(nxt)
                pend_t[r] = [nxt]
            if size:
                k = self._next_k(size, full)
                if self.adaptive:
                    k = min(k, self._costs.best_k(self.max_k))
                if k == 0:
                    idle = 0
                    # a failed probe doubles the wait before the next one (up to 8x probe)
                    self._wait = min(self._wait * 2, 8 * self.probe) if size == 1 else self.probe
                else:
                    self._wait = self.probe

    def _verify(
        self, row: Any, proposals: list[int], qs: list[Any], dists: list[Any], vocab: int
    ) -> tuple[int, int]:
        """How many proposals the target accepts, and the token it adds after them."""
        torch = require("torch", extra="hf")
        for j, token in enumerate(proposals):
            logits = dists[j][:vocab]
            if row.greedy:
                best = int(logits.argmax())
                if best != token:
                    return j, best
                continue
            p, q = row.probs(logits), qs[j]
            ratio = float(p[token]) / max(float(q[token]), 1e-30)
            if row.uniform() >= min(1.0, ratio):
                residual = torch.clamp(p - q, min=0)
                total = float(residual.sum())
                residual = residual / total if total > 0 else p
                return j, sample_from(residual, row.generator)
        return len(proposals), row.pick(dists[len(proposals)][:vocab])
