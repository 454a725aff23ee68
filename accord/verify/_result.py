"""What checking one candidate found, and the checker protocol."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from accord.errors import ConfigError
from accord.messages import Critique, Verdict

__all__ = ["CheckResult", "Checker", "as_check_result", "run_checker"]


class CheckResult(BaseModel):
    """How one candidate fared against a task's checks.

    ``passed``/``total`` count trusted checks (examples the task states, a numeric check, a
    verifier's verdict); ``weak_passed``/``weak_total`` count checks of unknown reliability
    (tests a model wrote), which only break ties by agreement. ``signature`` names the
    candidate's behaviour: candidates with equal signatures agree (same outputs on the same
    inputs, or the same extracted answer); None when it could not be run or read.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    passed: int = Field(0, ge=0)
    total: int = Field(0, ge=0)
    weak_passed: int = Field(0, ge=0)
    weak_total: int = Field(0, ge=0)
    signature: str | None = None
    feedback: str = ""
    """The first concrete failure (input, expected, actual, or the error), for a repair prompt."""

    @property
    def ok(self) -> bool:
        """Every trusted check ran and passed (False when there were none)."""
        return self.total > 0 and self.passed == self.total

    @property
    def rate(self) -> float:
        """Share of trusted checks passed (0 when there were none)."""
        return self.passed / self.total if self.total else 0.0


Checker = Callable[..., Any]
"""``check(candidate)`` or ``check(task, candidate)`` -> a :class:`CheckResult` (or a bool, a
``Verdict``, a ``Critique``: one trusted check), sync or async. An ``@accord.step`` works too;
with ``thread=True`` it runs in a worker thread."""


def as_check_result(value: Any) -> CheckResult:
    """A checker's return value as a :class:`CheckResult`.

    Raises:
        ConfigError: a value of another type.
    """
    if isinstance(value, CheckResult):
        return value
    if isinstance(value, bool):
        return CheckResult(passed=int(value), total=1)
    if isinstance(value, Verdict):
        return CheckResult(passed=int(value.accepted), total=1, feedback="; ".join(value.reasons))
    if isinstance(value, Critique):
        return CheckResult(passed=int(value.approved), total=1, feedback="; ".join(value.issues))
    raise ConfigError(
        f"a checker returned {type(value).__name__}; return an accord.verify.CheckResult, a bool, "
        "a Verdict or a Critique."
    )


async def run_checker(check: Checker, task: str, candidate: str) -> CheckResult:
    """Call ``check`` on one candidate the way its definition asks (arity, async, thread)."""
    from accord.agents import Step

    value = await Step.invoke(check, task, candidate)
    return as_check_result(value)
