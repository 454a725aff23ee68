"""Checks for tasks with a checkable answer, for :func:`accord.verified_search` and
:func:`accord.best_of_n`.

A *checker* is ``check(candidate)`` or ``check(task, candidate)`` returning a
:class:`CheckResult`: how many trusted checks passed, how many weak ones (model-written tests),
a behaviour *signature* (candidates with equal signatures agree) and concrete feedback.
:func:`python_checks` is the checker for "write this Python function" tasks (docstring examples,
probe inputs, a limited subprocess); :func:`answer_checks` covers short answers (numbers, words)
with a checking function or a verifier agent.
"""

from __future__ import annotations

from accord.verify._answers import answer_checks
from accord.verify._python import (
    Example,
    FunctionTask,
    examples_in,
    function_task,
    probes_for,
    program_from,
    python_checks,
    run_cases,
    written_tests,
)
from accord.verify._result import Checker, CheckResult, as_check_result, run_checker

__all__ = [
    "CheckResult",
    "Checker",
    "as_check_result",
    "run_checker",
    "python_checks",
    "answer_checks",
    "Example",
    "FunctionTask",
    "function_task",
    "program_from",
    "examples_in",
    "probes_for",
    "written_tests",
    "run_cases",
]
