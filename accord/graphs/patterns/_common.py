"""Pieces the patterns share: answer extraction for votes, and checks on the agents passed in."""

from __future__ import annotations

from collections.abc import Sequence

from accord.errors import ConfigError
from accord.messages import Message, Payload
from accord.runtime import Node

__all__ = ["extract_answer", "check_agents", "check_output"]


def extract_answer(message: Message | str) -> str:
    """The answer a message gives, normalised for voting ('' when it gives none).

    A payload with an ``answer`` field wins; otherwise the text's explicitly marked answer (the
    last ``Answer:`` line, ``\\boxed{}``, ``####`` or "the answer is ..."), or the whole text when
    it is a short bare answer (:func:`accord.ensemble.extract_answer`'s rules: a longer text
    without a marker gives no answer, not its last number). A number is written canonically
    (``1,000.0`` gives ``1000``); anything else is lower-cased with whitespace collapsed and
    trailing punctuation dropped.
    """
    from accord.ensemble import extract_answer as read
    from accord.ensemble import normalise_answer

    if isinstance(message, Message):
        found = getattr(message.payload, "answer", None)
        if isinstance(found, str) and found.strip():
            return normalise_answer(found.strip()) or ""
        text = message.text
    else:
        text = message
    return read(text) or ""


def check_agents(pattern: str, role: str, agents: Sequence[Node], minimum: int = 1) -> list[Node]:
    """Reject an empty or duplicated list of agents with a message that says how to fix it."""
    items = list(agents)
    if len(items) < minimum:
        raise ConfigError(f"{pattern}() needs at least {minimum} {role}, got {len(items)}.")
    names = [a.name for a in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(
            f"{pattern}(): {role} must have unique names; repeated: {', '.join(dupes)}."
        )
    return items


def check_output(pattern: str, role: str, node: Node, payload: type[Payload]) -> None:
    """Require ``node`` to produce ``payload`` (the pattern's edges read its fields)."""
    if node.produces is None or not issubclass(node.produces, payload):
        got = node.produces.__name__ if node.produces is not None else "text"
        raise ConfigError(
            f"{pattern}(): the {role} {node.name!r} must produce {payload.__name__} (it produces "
            f"{got}). Use accord.{role.capitalize()}(...) or pass output={payload.__name__}."
        )
