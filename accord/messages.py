"""Messages and the typed payloads agents exchange.

A :class:`Message` is what one activation of a node produced: who sent it, the text, an optional
validated payload, what it cost, and the ids of the messages it answered (``parents``), so every run
is a causal DAG. Messages and payloads are frozen and survive a JSON round trip exactly.

Payload classes subclass :class:`Payload`; each registers itself under its ``kind`` (the class name
unless given), which is how a stored message finds its payload class again. Caveat: only registered
kinds can be decoded; a stored kind that is not registered raises ``StoreDecodeError`` and nothing is
imported by name.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from accord._fast import construct
from accord.errors import ConfigError, StoreDecodeError

__all__ = [
    "Usage",
    "Payload",
    "Plan",
    "Solution",
    "Critique",
    "Verdict",
    "Answer",
    "Vote",
    "Message",
    "payload_kind",
    "payload_class",
]


class Usage(BaseModel):
    """What model calls cost. Adds with ``+``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests: int = 0
    """Model calls made (a re-ask or a retry that reached the model counts)."""
    prompt_tokens: int = 0
    """Tokens sent."""
    completion_tokens: int = 0
    """Tokens generated."""
    cost: float = 0.0
    """Cost in US dollars, from the backend's price table (0 when unknown)."""
    estimated: bool = False
    """True when some token counts are estimates (the server reported no usage for a call)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return construct(
            Usage,
            requests=self.requests + other.requests,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost=self.cost + other.cost,
            estimated=self.estimated or other.estimated,
        )


ZERO_USAGE = Usage()
"""No usage (shared: Usage is immutable)."""

_REGISTRY: dict[str, type[Payload]] = {}


class Payload(BaseModel):
    """Base of typed message payloads. Subclasses are frozen and registered by ``kind``.

    Example::

        class Score(accord.Payload):
            value: float
            \"\"\"Between 0 and 1.\"\"\"
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[str] = "Payload"

    def __init_subclass__(cls, kind: str | None = None, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.kind = kind or cls.__name__
        known = _REGISTRY.get(cls.kind)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ConfigError(
                f"payload kind {cls.kind!r} is already defined by {known.__module__}.{known.__qualname__}; "
                f"stored messages could not tell the two apart. Rename {cls.__qualname__} or give it "
                f"its own kind: class {cls.__qualname__}(accord.Payload, kind='myapp.{cls.__name__}')."
            )
        _REGISTRY[cls.kind] = cls

    def as_text(self) -> str:
        """The text a reader of this payload sees (its JSON unless a subclass says better)."""
        return self.model_dump_json()


def payload_kind(cls: type[Payload]) -> str:
    """The registered kind name of a payload class."""
    return cls.kind


def payload_class(kind: str) -> type[Payload]:
    """The payload class registered under ``kind``.

    Raises:
        StoreDecodeError: no payload class has that kind (nothing is imported by name).
    """
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise StoreDecodeError(
            f"unknown payload kind {kind!r}: no Payload subclass of that name is defined in this "
            "process. Import the module that defines it before loading the message."
        ) from None


class Plan(Payload):
    """A planner's decomposition of a task."""

    steps: list[str]
    """The steps, in order."""
    goal: str = ""
    """What the plan achieves, in one sentence."""

    def as_text(self) -> str:
        head = f"Goal: {self.goal}\n" if self.goal else ""
        return head + "\n".join(f"{i}. {s}" for i, s in enumerate(self.steps, 1))


class Solution(Payload):
    """A solver's answer to a task."""

    answer: str
    """The answer itself."""
    reasoning: str = ""
    """How the answer was reached."""

    def as_text(self) -> str:
        return self.answer if not self.reasoning else f"{self.reasoning}\n\nAnswer: {self.answer}"


class Critique(Payload):
    """A critic's judgement of a candidate solution."""

    approved: bool
    """True when the critic would ship the solution as it is."""
    issues: list[str] = []
    """Concrete problems, most important first."""
    score: float | None = None
    """An optional score between 0 and 1."""

    def as_text(self) -> str:
        if self.approved:
            return "Approved." + (f" Score: {self.score}" if self.score is not None else "")
        return "Not approved. Issues:\n" + "\n".join(f"- {i}" for i in self.issues)


class Verdict(Payload):
    """A verifier's or judge's decision."""

    accepted: bool
    """True when the candidate passes."""
    reasons: list[str] = []
    """Why, most important first; for a rejection, what to fix."""

    def as_text(self) -> str:
        return ("Accepted." if self.accepted else "Rejected.") + "".join(
            f"\n- {r}" for r in self.reasons
        )


class Answer(Payload):
    """A final answer, as a debater or aggregator gives it."""

    answer: str
    """The answer, as short as possible (a number, a letter, a phrase)."""
    reasoning: str = ""
    """The argument for it."""

    def as_text(self) -> str:
        return self.answer if not self.reasoning else f"{self.reasoning}\n\nAnswer: {self.answer}"


class Vote(Payload):
    """The outcome of a vote over candidate answers."""

    answer: str
    """The winning (normalised) answer."""
    counts: dict[str, float] = {}
    """Weighted votes per answer."""

    def as_text(self) -> str:
        return self.answer


class Message(BaseModel):
    """One output of one activation: the unit the scheduler delivers along edges."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    """Derived from (run, node, round): stable across resume and replay."""
    run_id: str
    """The run this message belongs to."""
    sender: str
    """The node that produced it (``"task"`` for the task itself)."""
    recipients: tuple[str, ...] = ()
    """The nodes it was delivered to."""
    text: str
    """The text of the message (a payload's ``as_text()`` when the model gave JSON)."""
    payload: Payload | None = None
    """The validated payload, when the node declares an output type."""
    usage: Usage = Field(default_factory=Usage)
    """What producing it cost."""
    parents: tuple[str, ...] = ()
    """Ids of the messages this one answered."""
    round: int = 0
    """The sender's round (0 for its first activation)."""
    created_at: float = Field(default_factory=time.time)
    """Unix time of creation."""
    metadata: dict[str, str] = {}
    """Small facts about the message (the route a router chose, the cascade stage...)."""

    @field_serializer("payload")
    def _dump_payload(self, payload: Payload | None) -> dict[str, Any] | None:
        if payload is None:
            return None
        return {"kind": payload.kind, **payload.model_dump(mode="json")}

    @field_validator("payload", mode="before")
    @classmethod
    def _load_payload(cls, value: Any) -> Any:
        if isinstance(value, dict):
            data = dict(value)
            kind = data.pop("kind", None)
            if not isinstance(kind, str):
                raise StoreDecodeError(
                    "a stored payload has no 'kind' field; it was not written by accord"
                )
            return payload_class(kind).model_validate(data)
        return value

    @property
    def content(self) -> Payload | str:
        """The payload if there is one, else the text."""
        return self.payload if self.payload is not None else self.text
