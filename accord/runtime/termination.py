"""Termination conditions and budgets that compose with ``|`` and ``&``.

``graph.run(task, until=MaxSteps(20) | Timeout(30) | TokenBudget(10_000))`` stops the run
gracefully (``RunResult.status == "stopped"``, ``stop_reason`` naming the condition) when the
condition fires. Budgets (:class:`TokenBudget`, :class:`CostBudget`, :class:`RequestBudget`) are
checked *before* each model call, and the call that would exceed them is not made; the others are
checked after each message.

Caveat: a condition object keeps no state of its own, so one instance can serve many runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from accord.messages import Message, Usage

__all__ = [
    "RunSnapshot",
    "Condition",
    "MaxSteps",
    "MaxRounds",
    "Timeout",
    "TokenBudget",
    "CostBudget",
    "RequestBudget",
    "Until",
]


@dataclass(slots=True)
class RunSnapshot:
    """What conditions see: the run so far."""

    steps: int = 0
    """Activations finished."""
    elapsed_s: float = 0.0
    usage: Usage = field(default_factory=Usage)
    """Usage of every model call so far, in-flight activations included."""
    rounds: dict[str, int] = field(default_factory=dict)
    """Activations finished per node."""
    last: Message | None = None
    """The message just produced (None before any)."""
    next_prompt_tokens: int = 0
    """Before a model call: the estimated prompt tokens of that call."""


class Condition:
    """Base of termination conditions. Subclasses override :meth:`after_message` and/or
    :meth:`before_call`, returning a reason string when the run must stop."""

    def after_message(self, run: RunSnapshot) -> str | None:
        """Checked after every message; a string stops the run with that reason."""
        return None

    def before_call(self, run: RunSnapshot) -> str | None:
        """Checked before every model call; a string stops the run before the call is made."""
        return None

    def deadline_s(self) -> float | None:
        """Seconds after the start when the run must stop, if this condition has one."""
        return None

    def __or__(self, other: Condition) -> Condition:
        return _Any(self, other)

    def __and__(self, other: Condition) -> Condition:
        return _All(self, other)


class _Any(Condition):
    def __init__(self, *parts: Condition) -> None:
        self.parts = parts

    def after_message(self, run: RunSnapshot) -> str | None:
        return next((r for p in self.parts if (r := p.after_message(run))), None)

    def before_call(self, run: RunSnapshot) -> str | None:
        return next((r for p in self.parts if (r := p.before_call(run))), None)

    def deadline_s(self) -> float | None:
        found = [d for p in self.parts if (d := p.deadline_s()) is not None]
        return min(found) if found else None

    def __repr__(self) -> str:
        return " | ".join(map(repr, self.parts))


class _All(Condition):
    def __init__(self, *parts: Condition) -> None:
        self.parts = parts

    def _both(self, reasons: list[str | None]) -> str | None:
        return " & ".join(r for r in reasons if r) if all(reasons) else None

    def after_message(self, run: RunSnapshot) -> str | None:
        return self._both([p.after_message(run) for p in self.parts])

    def before_call(self, run: RunSnapshot) -> str | None:
        return self._both([p.before_call(run) for p in self.parts])

    def __repr__(self) -> str:
        return " & ".join(map(repr, self.parts))


class MaxSteps(Condition):
    """Stop after ``n`` activations have finished."""

    def __init__(self, n: int) -> None:
        self.n = n

    def after_message(self, run: RunSnapshot) -> str | None:
        return f"MaxSteps({self.n}) reached" if run.steps >= self.n else None

    def __repr__(self) -> str:
        return f"MaxSteps({self.n})"


class MaxRounds(Condition):
    """Stop when any node has finished ``n`` rounds (activations)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def after_message(self, run: RunSnapshot) -> str | None:
        if run.last is not None and run.rounds.get(run.last.sender, 0) >= self.n:
            return f"MaxRounds({self.n}) reached by {run.last.sender!r}"
        return None

    def __repr__(self) -> str:
        return f"MaxRounds({self.n})"


class Timeout(Condition):
    """Stop the run ``seconds`` after it started (in-flight activations are cancelled)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def after_message(self, run: RunSnapshot) -> str | None:
        return f"Timeout({self.seconds}) reached" if run.elapsed_s >= self.seconds else None

    def deadline_s(self) -> float | None:
        return self.seconds

    def __repr__(self) -> str:
        return f"Timeout({self.seconds})"


class TokenBudget(Condition):
    """Refuse the model call that would take the run past ``tokens`` (prompt + completion)."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens

    def before_call(self, run: RunSnapshot) -> str | None:
        projected = run.usage.total_tokens + run.next_prompt_tokens
        if projected > self.tokens:
            return (
                f"TokenBudget({self.tokens}) would be exceeded: {run.usage.total_tokens} tokens used, "
                f"the next call sends about {run.next_prompt_tokens}"
            )
        return None

    def __repr__(self) -> str:
        return f"TokenBudget({self.tokens})"


class CostBudget(Condition):
    """Refuse model calls once the run has cost ``usd`` or more."""

    def __init__(self, usd: float) -> None:
        self.usd = usd

    def before_call(self, run: RunSnapshot) -> str | None:
        if run.usage.cost >= self.usd:
            return f"CostBudget({self.usd}) reached: ${run.usage.cost:.4f} spent"
        return None

    def __repr__(self) -> str:
        return f"CostBudget({self.usd})"


class RequestBudget(Condition):
    """Refuse the model call past ``n`` calls."""

    def __init__(self, n: int) -> None:
        self.n = n

    def before_call(self, run: RunSnapshot) -> str | None:
        if run.usage.requests >= self.n:
            return f"RequestBudget({self.n}) reached: {run.usage.requests} calls made"
        return None

    def __repr__(self) -> str:
        return f"RequestBudget({self.n})"


class Until(Condition):
    """Stop as soon as a message satisfies ``predicate``.

    Example::

        Until(lambda m: "FINAL ANSWER" in m.text, name="final answer given")
    """

    def __init__(self, predicate: Callable[[Message], bool], *, name: str | None = None) -> None:
        self.predicate = predicate
        self.name = name or getattr(predicate, "__name__", "predicate")

    def after_message(self, run: RunSnapshot) -> str | None:
        if run.last is not None and self.predicate(run.last):
            return f"Until({self.name}) satisfied by {run.last.sender!r}"
        return None

    def __repr__(self) -> str:
        return f"Until({self.name})"
