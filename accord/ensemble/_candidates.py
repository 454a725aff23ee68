"""Candidates: the answers an after-inference method chooses from, whatever form they come in.

A candidate may be a string, a :class:`~accord.messages.Message` (its text), a
:class:`~accord.messages.Payload` (its ``as_text()``), a :class:`~accord.backends.base.Choice`,
or a :class:`Candidates` payload (several texts, as one sampling node produces them), which counts
as one candidate per text. Caveat: a :class:`~accord.messages.Message` whose payload is
:class:`Candidates` also counts once per text, so weights given per candidate apply after that
expansion.
"""

from __future__ import annotations

from collections.abc import Sequence

from accord.backends.base import Choice
from accord.messages import Message, Payload

__all__ = ["Candidate", "Candidates", "candidate_texts", "candidates_from_messages"]


class Candidates(Payload):
    """Several candidate answers in one message (a node that samples ``n`` answers at once)."""

    texts: list[str]
    """The answers, in the order they were produced."""

    def as_text(self) -> str:
        return "\n\n".join(f"[{i}] {t}" for i, t in enumerate(self.texts))


Candidate = str | Message | Payload | Choice
"""Anything a selection method accepts as one candidate answer."""


def _texts_of(item: Candidate) -> list[str]:
    if isinstance(item, str):
        return [item]
    if isinstance(item, Message):
        if isinstance(item.payload, Candidates):
            return list(item.payload.texts)
        return [item.text]
    if isinstance(item, Candidates):
        return list(item.texts)
    if isinstance(item, Payload):
        return [item.as_text()]
    if isinstance(item, Choice):
        return [item.text]
    raise TypeError(
        f"a candidate must be a str, Message, Payload or Choice, not {type(item).__name__}."
    )


def candidate_texts(candidates: Sequence[Candidate]) -> list[str]:
    """The candidates as plain texts, :class:`Candidates` payloads expanded in place.

    Raises:
        TypeError: a candidate of an unsupported type (the message names it).
    """
    if isinstance(candidates, str):
        raise TypeError("candidates must be a sequence of answers, not one string.")
    texts: list[str] = []
    for item in candidates:
        texts.extend(_texts_of(item))
    return texts


def candidates_from_messages(messages: Sequence[Message]) -> tuple[list[str], list[str]]:
    """Texts of a node's input messages (the task message skipped) and the sender of each."""
    texts: list[str] = []
    senders: list[str] = []
    for message in messages:
        if message.sender == "task":
            continue
        found = _texts_of(message)
        texts.extend(found)
        senders.extend([message.sender] * len(found))
    return texts, senders
