"""RunResult: what ``graph.run`` returns.

Caveat: ``transcript`` is in causal order (depth in the message DAG, then node order, then round),
which does not depend on timing; real-time order is in the events.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from accord.messages import Message, Usage
from accord.runtime._input import Question

__all__ = ["RunResult", "ActivationTiming", "RunStatus"]

RunStatus = Literal["completed", "stopped", "failed", "cancelled", "waiting"]
"""``"waiting"``: nodes wait for a person's answers (``RunResult.questions``); answer them with
``graph.resume(run_id, answers={question_id: value})`` or ``accord runs answer``."""


class ActivationTiming(BaseModel):
    """When one activation ran."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node: str
    round: int
    started_at: float
    duration_s: float
    cached: bool = False


class RunResult(BaseModel):
    """The outcome of one run of a graph."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    graph: str
    task: str
    status: RunStatus
    stop_reason: str | None = None
    """Why a stopped run stopped (the condition that fired), or the error of a failed one."""
    output: Message | None
    """The last message an exit node produced."""
    outputs: dict[str, Message]
    """The last message of each exit node that produced one."""
    transcript: list[Message]
    """Every message of the run, task excluded, in causal order."""
    usage: Usage
    """Total usage of the run."""
    usage_by_agent: dict[str, Usage]
    """Usage per node."""
    started_at: float
    duration_s: float
    timings: list[ActivationTiming]
    """One entry per activation, in the order they finished."""
    questions: list[Question] = []
    """A waiting run's pending questions, in the order they were asked."""

    @property
    def text(self) -> str:
        """The output's text ('' when there is none)."""
        return self.output.text if self.output is not None else ""
