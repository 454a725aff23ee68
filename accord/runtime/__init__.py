"""The async scheduler, run events, termination conditions and run results."""

from __future__ import annotations

from accord.runtime._input import AnswerError, Approval, Question
from accord.runtime._node import ActivationContext, Node, NodeOutput, current_context, report_retry
from accord.runtime._scheduler import ActivationCache, activation_id, execute
from accord.runtime.events import (
    ActivationFinished,
    ActivationStarted,
    Event,
    InputReceived,
    InputRequested,
    MessageEvent,
    RetryEvent,
    RunFinished,
    RunStarted,
    TokenEvent,
)
from accord.runtime.result import ActivationTiming, RunResult, RunStatus
from accord.runtime.termination import (
    Condition,
    CostBudget,
    MaxRounds,
    MaxSteps,
    RequestBudget,
    RunSnapshot,
    Timeout,
    TokenBudget,
    Until,
)

__all__ = [
    "ActivationContext",
    "Node",
    "NodeOutput",
    "current_context",
    "report_retry",
    "ActivationCache",
    "activation_id",
    "execute",
    "Event",
    "RunStarted",
    "ActivationStarted",
    "TokenEvent",
    "MessageEvent",
    "ActivationFinished",
    "RetryEvent",
    "RunFinished",
    "InputRequested",
    "InputReceived",
    "Question",
    "Approval",
    "AnswerError",
    "RunResult",
    "RunStatus",
    "ActivationTiming",
    "Condition",
    "RunSnapshot",
    "MaxSteps",
    "MaxRounds",
    "Timeout",
    "TokenBudget",
    "CostBudget",
    "RequestBudget",
    "Until",
]
