"""Typed run events, as ``graph.stream()`` yields them and the run store records them.

Every event is a frozen pydantic model with a ``kind`` tag, so a list of them validates as the
discriminated union :data:`Event`. Order: ``run_started``, then per activation
``activation_started``, any ``token``/``retry``/``tool_call``/``tool_result`` events,
``message``, ``activation_finished``, and
finally ``run_finished``. Caveat: events of concurrent activations interleave in real time; the
transcript (``RunResult.transcript``) is the timing-independent order.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from accord.messages import Message, Usage

__all__ = [
    "RunStarted",
    "ActivationStarted",
    "TokenEvent",
    "MessageEvent",
    "ActivationFinished",
    "RetryEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "RunFinished",
    "InputRequested",
    "InputReceived",
    "Event",
]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    at: float
    """Unix time the event happened."""


class RunStarted(_Event):
    """A run began."""

    kind: Literal["run_started"] = "run_started"
    graph: str
    task: str


class ActivationStarted(_Event):
    """A node started one activation (one round) with these input messages."""

    kind: Literal["activation_started"] = "activation_started"
    node: str
    round: int
    activation_id: str
    inputs: tuple[str, ...]


class TokenEvent(_Event):
    """A chunk of text streamed by a model while a node runs."""

    kind: Literal["token"] = "token"
    node: str
    round: int
    text: str


class MessageEvent(_Event):
    """A node produced its message."""

    kind: Literal["message"] = "message"
    message: Message


class ActivationFinished(_Event):
    """An activation finished; ``usage`` is what its model calls cost."""

    kind: Literal["activation_finished"] = "activation_finished"
    node: str
    round: int
    activation_id: str
    duration_s: float
    usage: Usage
    cached: bool = False
    """True when the output came from the run store (a resumed run) rather than a new call."""


class RetryEvent(_Event):
    """A model call failed and will be tried again after ``delay_s``."""

    kind: Literal["retry"] = "retry"
    node: str
    round: int
    attempt: int
    delay_s: float
    error: str
    status_code: int | None = None


class ToolCallEvent(_Event):
    """An agent's model asked for a tool call (``arguments``: its JSON text, cut at 2000)."""

    kind: Literal["tool_call"] = "tool_call"
    node: str
    round: int
    call_id: str
    tool: str
    arguments: str


class ToolResultEvent(_Event):
    """A tool call finished; ``error`` names the failure kind (None: it succeeded)."""

    kind: Literal["tool_result"] = "tool_result"
    node: str
    round: int
    call_id: str
    tool: str
    result: str
    """What the model reads, cut at 2000 characters."""
    error: str | None = None
    duration_s: float = 0.0
    cached: bool = False
    """True when the result came from a recording instead of running the tool."""


class InputRequested(_Event):
    """A node asked a person a question (``ctx.ask`` or a ``Human`` node) and waits."""

    kind: Literal["input_requested"] = "input_requested"
    node: str
    round: int
    question_id: str
    question: str
    answer_schema: dict[str, Any]
    timeout: float | None = None


class InputReceived(_Event):
    """A question got its answer (given now, recorded earlier, or a timeout's default)."""

    kind: Literal["input_received"] = "input_received"
    node: str
    round: int
    question_id: str


class RunFinished(_Event):
    """The run ended (``status``: completed, stopped, failed, cancelled or waiting), with its
    output, so ``async for event in graph.stream(...)`` needs no second call."""

    kind: Literal["run_finished"] = "run_finished"
    status: str
    stop_reason: str | None = None
    usage: Usage
    duration_s: float
    output: Message | None = None
    """The run's output message (``RunResult.output``; the partial one when it did not complete)."""


Event = Annotated[
    RunStarted
    | ActivationStarted
    | TokenEvent
    | MessageEvent
    | ActivationFinished
    | RetryEvent
    | ToolCallEvent
    | ToolResultEvent
    | RunFinished
    | InputRequested
    | InputReceived,
    Field(discriminator="kind"),
]
"""Any run event (a discriminated union on ``kind``)."""
