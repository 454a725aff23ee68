"""Checks for short answers (a number, a word): the answer's signature is the extracted answer,
so candidates that give the same answer agree (self-consistency's vote, as clustering), and a
trusted check is a function of the answer or a verifier agent's verdict."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from accord.errors import ConfigError, EnsembleError
from accord.verify._result import CheckResult, as_check_result

__all__ = ["answer_checks"]


def answer_checks(
    check: Callable[..., Any] | None = None,
    *,
    extract: str | Callable[[str], str | None] = "number",
    verifier: Any = None,
) -> Callable[[str, str], Awaitable[CheckResult]]:
    """A checker for tasks with a short answer.

    Args:
        check: ``check(answer)`` or ``check(task, answer)`` on the *extracted* answer -> bool,
            ``Verdict``, ``Critique`` or :class:`CheckResult` (sync, async, or an
            ``@accord.step``; ``thread=True`` runs it in a thread). A numeric check, a
            substitution back into the equation, a unit test.
        extract: how to read the answer from a reply (an extractor name of
            :mod:`accord.ensemble`, or a function).
        verifier: an Agent, backend or name asked to accept or reject each reply (0-10 rating,
            or its ``Verdict``/``Critique``); its calls count in the run. Used when ``check``
            is None; with neither, only agreement counts.

    Example::

        def plugs_in(answer: str) -> bool:        # x**2 - 5x + 6 = 0
            x = float(answer)
            return abs(x * x - 5 * x + 6) < 1e-9

        graph = accord.verified_search(solver, answer_checks(plugs_in), budget=6)
    """
    from accord.agents import Step
    from accord.ensemble import best_of_n, resolve_extractor

    if check is not None and verifier is not None:
        raise ConfigError("answer_checks takes check=... or verifier=..., not both.")
    reader = resolve_extractor(extract) if isinstance(extract, str) else extract

    async def checker(task: str, reply: str) -> CheckResult:
        answer = reader(reply)
        if answer is None:
            return CheckResult(total=1, feedback="The reply gives no final answer.")
        if check is not None:
            result = as_check_result(await Step.invoke(check, task, answer))
        elif verifier is not None:
            try:
                scored = await best_of_n(task, [reply], judge=verifier)
            except EnsembleError:  # the verifier's reply held no rating: nothing trusted
                return CheckResult(signature=answer)
            accepted = (scored.scores[0] or 0.0) >= 0.5
            result = CheckResult(
                passed=int(accepted),
                total=1,
                feedback="" if accepted else "A verifier rejected it.",
            )
        else:
            result = CheckResult()
        return result.model_copy(update={"signature": answer})

    return checker
