"""Multi-agent debate (Du et al. 2023, "Improving Factuality and Reasoning in Language Models
through Multiagent Debate", arXiv 2305.14325).

Every debater answers; then, each round, every debater reads the other debaters' latest answers and
gives an updated answer. A moderator step gathers each round, and the debate stops early when all
debaters agree. The final answer is a majority vote over the extracted answers, or a judge's
decision.

Graph: ``debaters ─▶ moderator ─(no consensus, ≤ rounds)▶ debaters``; ``moderator ─(consensus or
last round)▶ vote | judge``.

Answers are read by one extractor, for the consensus check and the vote alike: by default the
explicitly marked answer (``Answer: ...``, "the answer is ...", ``\\boxed{}``; see
:func:`~accord.graphs.patterns.extract_answer`); ``debate(..., extract="code")`` for code answers,
or any name or function :func:`accord.ensemble.vote` takes. A reply with no readable answer is
listed in the round's ``no_answer`` and never counts towards consensus or the vote.

Caveat: a debater sees the other debaters' answers, never its own future ones; its own earlier
answers are in its memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict

from accord.agents import Agent
from accord.errors import ConfigError
from accord.graphs._graph import DEFAULT_MAX_STEPS, Graph
from accord.graphs.patterns._common import check_agents, extract_answer
from accord.messages import Message, Payload, Vote
from accord.runtime import ActivationContext, Join, Node, NodeOutput

__all__ = ["debate", "DebateRound", "Position"]


class Position(BaseModel):
    """One debater's answer in one round."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    speaker: str
    text: str
    answer: str
    """The extracted, normalised answer."""


class DebateRound(Payload):
    """What the moderator saw in one round: every debater's answer, and whether they agree."""

    round: int
    positions: list[Position]
    consensus: str | None = None
    """The answer all debaters gave, when they agree (never set when one gave no answer)."""
    no_answer: list[str] = []
    """Debaters whose reply held no answer the extractor could read."""
    last: bool = False
    """True when no further round will run."""

    def as_text(self) -> str:
        return "\n\n".join(f"{p.speaker}:\n{p.text}" for p in self.positions)

    def others(self, speaker: str) -> list[Position]:
        return [p for p in self.positions if p.speaker != speaker]


class Moderator:
    """Gathers one round of answers, detects consensus, and says whether to go on."""

    join: Join = "all"
    accepts: tuple[type[Payload], ...] | None = None
    produces: type[Payload] | None = DebateRound
    timeout: float | None = None

    def __init__(
        self,
        name: str,
        debaters: Sequence[str],
        rounds: int,
        stop_on_consensus: bool,
        extract: str | Callable[[str], str | None] | None = None,
    ) -> None:
        from accord.ensemble import resolve_extractor

        self.name = name
        self.debaters = list(debaters)
        self.rounds = rounds
        self.stop_on_consensus = stop_on_consensus
        self._reader = None if extract is None else resolve_extractor(extract)

    def answer(self, message: Message) -> str:
        """The normalised answer of one debater's message ('' when it has none)."""
        if self._reader is None:
            return extract_answer(message)
        found = getattr(message.payload, "answer", None)
        text = found if isinstance(found, str) and found.strip() else message.text
        try:
            return self._reader(text) or ""
        except Exception as exc:
            raise ConfigError(
                f"debate(): the answer extractor raised on {message.sender!r}'s reply "
                f"({type(exc).__name__}: {exc}). An extractor must return None for text it cannot "
                "read."
            ) from exc

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        by_sender = {m.sender: m for m in ctx.inputs}
        positions = [
            Position(speaker=n, text=by_sender[n].text, answer=self.answer(by_sender[n]))
            for n in self.debaters
            if n in by_sender
        ]
        answers = {p.answer for p in positions}
        # Consensus: every debater gave the same, readable answer.
        consensus = (
            positions[0].answer if positions and len(answers) == 1 and positions[0].answer else None
        )
        last = ctx.round >= self.rounds - 1 or (self.stop_on_consensus and consensus is not None)
        payload = DebateRound(
            round=ctx.round,
            positions=positions,
            consensus=consensus,
            last=last,
            no_answer=[p.speaker for p in positions if not p.answer],
        )
        return NodeOutput(text=payload.as_text(), payload=payload)


class VoteStep:
    """Majority vote over the last round's answers."""

    join: Join = "all"
    accepts: tuple[type[Payload], ...] | None = (DebateRound,)
    produces: type[Payload] | None = Vote
    timeout: float | None = None

    def __init__(self, name: str = "vote") -> None:
        self.name = name

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        from accord.ensemble import tally

        rounds = [m.payload for m in ctx.inputs if isinstance(m.payload, DebateRound)]
        positions = rounds[-1].positions if rounds else []
        # The answers were extracted by the moderator; "" (no answer) abstains.
        counted = tally([p.answer for p in positions], extract="exact", default="")
        vote = Vote(answer=counted.answer, counts=dict(counted.counts))
        return NodeOutput(
            text=vote.as_text(),
            payload=vote,
            metadata={
                "no_answer": ",".join(p.speaker for p in positions if not p.answer),
                "tied": ",".join(counted.tied),
            },
        )


def _is_last(m: Message) -> bool:
    return isinstance(m.payload, DebateRound) and m.payload.last


def _goes_on(m: Message) -> bool:
    return isinstance(m.payload, DebateRound) and not m.payload.last


def debate(
    debaters: Sequence[Node],
    rounds: int = 3,
    aggregate: str | Agent = "vote",
    *,
    stop_on_consensus: bool = True,
    extract: str | Callable[[str], str | None] | None = None,
    name: str = "debate",
) -> Graph:
    """A multi-agent debate graph.

    Args:
        debaters: two or more agents (``accord.Debater`` is made for it); they may use different
            backends.
        rounds: answering rounds, the first answers included (the paper used 3 agents and
            2 rounds of debate after the first answers, i.e. ``rounds=3``).
        aggregate: ``"vote"`` (majority over extracted answers) or a judge agent (``accord.Judge``)
            that reads the final round.
        stop_on_consensus: end early when every debater gives the same (readable) answer.
        extract: how each debater's answer is read, for the consensus check and the vote: None
            (the marked answer, see :func:`~accord.graphs.patterns.extract_answer`), an
            extractor name (``"code"`` for code answers, ``"number"``, ``"choice"``, ...) or a
            function ``(text) -> str | None``.

    Returns:
        An ordinary :class:`~accord.Graph`; its output is a ``Vote`` or the judge's message.

    Example::

        g = accord.debate([accord.Debater(f"d{i}") for i in range(3)], rounds=3)
        result = await g.run("What is 17 * 24?", backend=accord.backend("openai:gpt-4o-mini"))
        print(result.output.payload.answer)
    """
    agents = check_agents("debate", "debaters", debaters, minimum=2)
    if rounds < 1:
        raise ConfigError(f"debate(): rounds must be 1 or more, not {rounds}.")
    names = [a.name for a in agents]
    reserved = {"moderator", "vote"} & set(names)
    if reserved:
        raise ConfigError(f"debate(): debater names {sorted(reserved)} are reserved; rename them.")
    # every debater and the moderator each round, then the aggregation
    g = Graph(name, max_steps=max(DEFAULT_MAX_STEPS, rounds * (len(names) + 1) + 2))
    g.add(*agents)
    g.add(Moderator("moderator", names, rounds, stop_on_consensus, extract))
    if aggregate == "vote":
        final: Node = VoteStep("vote")
    elif isinstance(aggregate, Agent):
        final = aggregate
    else:
        raise ConfigError(
            f"debate(): aggregate must be 'vote' or a judge Agent, not {aggregate!r}."
        )
    g.add(final)
    for n in names:
        g.connect(n, "moderator")
        g.connect("moderator", n, when=_goes_on, max_rounds=rounds)
    g.connect("moderator", final.name, when=_is_last)
    g.set_entry(*names)
    g.set_exit(final.name)
    return g
