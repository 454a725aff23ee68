"""Pieces the patterns share: answer extraction for votes, and checks on the agents passed in."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from accord.errors import ConfigError
from accord.messages import Message, Payload
from accord.runtime._node import Node

__all__ = ["extract_answer", "majority", "check_agents", "check_output"]

_ANSWER_LINE = re.compile(r"(?im)^\W*(?:final\s+)?answer\s*[:=]\s*(.+?)\s*$")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def extract_answer(message: Message | str) -> str:
    """The answer a message gives, normalised for voting.

    A payload with an ``answer`` field wins; else the last ``Answer: ...`` line; else the last
    number; else the last non-empty line. Case, surrounding punctuation and number formatting
    (``1,000.0`` → ``1000``) are normalised.
    """
    if isinstance(message, Message):
        payload = message.payload
        found = getattr(payload, "answer", None)
        if isinstance(found, str):
            return _normalise(found)
        text = message.text
    else:
        text = message
    lines = _ANSWER_LINE.findall(text)
    if lines:
        return _normalise(lines[-1])
    numbers = _NUMBER.findall(text)
    if numbers:
        return _normalise(numbers[-1])
    rest = [line for line in text.splitlines() if line.strip()]
    return _normalise(rest[-1]) if rest else ""


def _normalise(answer: str) -> str:
    a = answer.strip().strip("*_`\"'.").strip()
    if _NUMBER.fullmatch(a):
        number = float(a.replace(",", ""))
        return str(int(number)) if number.is_integer() else repr(number)
    return " ".join(a.lower().split())


def majority(answers: Sequence[str]) -> tuple[str, dict[str, float]]:
    """The most common non-empty answer (ties: the one given first) and the counts."""
    counts = Counter(a for a in answers if a)
    if not counts:
        return "", {}
    best = max(counts.values())
    winner = next(a for a in answers if counts.get(a) == best)
    return winner, {a: float(c) for a, c in counts.items()}


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
