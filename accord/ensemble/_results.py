"""What the after-inference methods return: the choice, the evidence for it, and its cost.

Every result carries ``usage`` (model calls and tokens the method spent itself: judge, utility
or aggregator calls; zero for a plain vote) and ``latency_s`` (wall time of the method). Caveat:
candidates that were produced before the method ran are not counted here; their cost is on the
messages or completions they came from.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from accord.messages import Usage, Vote

__all__ = ["VoteResult", "Selection", "Fusion"]


class VoteResult(BaseModel):
    """The outcome of :func:`~accord.ensemble.vote`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    answer: str
    """The winning answer, as the extractor normalised it (the default, on fallback)."""
    counts: dict[str, float]
    """Weighted votes per normalised answer, in order of first appearance."""
    index: int
    """The first candidate that gave the winning answer (-1 on fallback)."""
    text: str
    """That candidate's full text (the default, on fallback)."""
    winners: tuple[int, ...] = ()
    """Every candidate that gave the winning answer."""
    tied: tuple[str, ...] = ()
    """The answers that tied for most votes, when the tie rule had to decide (else empty)."""
    unparsable: tuple[int, ...] = ()
    """Candidates the extractor could not read an answer from (they did not vote)."""
    fallback: bool = False
    """True when no candidate had a usable answer and ``default`` was returned."""
    support: float = 0.0
    """The winner's share of the weight of the usable votes (0 on fallback)."""
    usage: Usage = Usage()
    latency_s: float = 0.0

    def to_payload(self) -> Vote:
        """The result as a :class:`~accord.messages.Vote` payload."""
        return Vote(answer=self.answer, counts=dict(self.counts))


class Selection(BaseModel):
    """The outcome of a method that picks one candidate (MBR, best-of-n, pairwise ranking)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str
    """``"mbr"``, ``"best_of_n"`` or ``"pairwise_rank"``."""
    index: int
    """The chosen candidate."""
    text: str
    """Its text."""
    candidates: tuple[str, ...]
    """Every candidate, in the order given (sampled ones included)."""
    scores: tuple[float | None, ...]
    """Per candidate: expected utility (MBR), reward or judge score (best-of-n), wins (pairwise);
    None where a candidate could not be scored."""
    ranking: tuple[int, ...]
    """Candidate indices, best first (ties keep the given order). A bubble pass decides only the
    first place; the rest keep the given order."""
    usage: Usage = Usage()
    latency_s: float = 0.0

    @property
    def calls(self) -> int:
        """Model calls the method made."""
        return self.usage.requests


class Fusion(BaseModel):
    """The outcome of :func:`~accord.ensemble.fuse`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    """The aggregator's answer."""
    sources: tuple[int, ...]
    """The candidates it was shown, in the order shown."""
    usage: Usage = Usage()
    latency_s: float = 0.0

    @property
    def calls(self) -> int:
        return self.usage.requests


def select_best(
    method: str,
    texts: list[str],
    scores: list[float | None],
    usable: Iterable[int],
    usage: Usage,
    latency_s: float,
) -> Selection:
    """The :class:`Selection` of the highest-scoring usable candidate (ties: the earliest).

    The ranking lists the usable candidates by score, then the others in their order.
    """
    kept = set(usable)
    ranked = sorted(kept, key=lambda i: (-(scores[i] or 0.0), i))
    best = ranked[0]
    return Selection(
        method=method,
        index=best,
        text=texts[best],
        candidates=tuple(texts),
        scores=tuple(scores),
        ranking=(*ranked, *(i for i in range(len(texts)) if i not in kept)),
        usage=usage,
        latency_s=latency_s,
    )
