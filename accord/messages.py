"""Messages and the typed payloads agents exchange.

A :class:`Message` is what one activation of a node produced: who sent it, the text, an optional
validated payload, what it cost, and the ids of the messages it answered (``parents``), so every run
is a causal DAG. Messages and payloads are frozen and survive a JSON round trip exactly.

Payload classes subclass :class:`Payload`; each registers itself under its ``kind`` (the class name
unless given), which is how a stored message finds its payload class again.

Payloads are what models reply with, so they accept what models really send and normalise it, in
one place for every payload class: a number where text is expected becomes its text (``4032`` ->
``"4032"``), ``"true"``/``"false"`` (and ``"yes"``/``"no"``, ``"1"``/``"0"``) where a boolean is
expected become booleans, and :meth:`Payload.from_reply` takes a bare value (``"408"``, ``408``,
a list) for a payload with exactly one required field. Anything else that does not match is a
``ValidationError`` whose message says which field and why, which is what an agent's re-ask shows
the model.

Caveat: only registered kinds can be decoded; a stored kind that is not registered raises
``StoreDecodeError`` and nothing is imported by name.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
)

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
    by_model: tuple[tuple[str, Usage], ...] = ()
    """Per model, when one call ran several (cooperative decoding): ``(name, usage)`` pairs.
    Left out of serialised usage when empty (and not kept by the run store)."""

    @model_serializer(mode="wrap")
    def _without_empty_by_model(self, handler: Any) -> Any:
        data = handler(self)
        if isinstance(data, dict) and not getattr(self, "by_model", ()):
            data.pop("by_model", None)
        return data

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        by_model: tuple[tuple[str, Usage], ...] = getattr(self, "by_model", ())
        theirs: tuple[tuple[str, Usage], ...] = getattr(other, "by_model", ())
        if theirs:
            merged = dict(by_model)
            for name, usage in theirs:
                merged[name] = merged[name] + usage if name in merged else usage
            by_model = tuple(merged.items())
        return construct(
            Usage,
            requests=self.requests + other.requests,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost=self.cost + other.cost,
            estimated=self.estimated or other.estimated,
            by_model=by_model,
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

    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    kind: ClassVar[str] = "Payload"

    def __init_subclass__(cls, kind: str | None = None, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.kind = kind or cls.__name__
        known = _REGISTRY.get(cls.kind)
        if known is not None and (known.__module__, known.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):
            raise ConfigError(
                f"payload kind {cls.kind!r} is already defined by {known.__module__}.{known.__qualname__}; "
                f"stored messages could not tell the two apart. Rename {cls.__qualname__} or give it "
                f"its own kind: class {cls.__qualname__}(accord.Payload, kind='myapp.{cls.__name__}')."
            )
        _REGISTRY[cls.kind] = cls

    def as_text(self) -> str:
        """The text a reader of this payload sees (its JSON unless a subclass says better)."""
        return self.model_dump_json()

    @classmethod
    def from_reply(cls, data: Any) -> Self:
        """Validate a model's parsed JSON reply, normalising what models commonly send.

        An object is validated as it is (numbers where text is expected and ``"true"`` /
        ``"false"`` where a boolean is expected are accepted by every payload). Any other JSON
        value (a string, a number, a list) is taken as the value of the payload's one required
        field (or its only field), so ``"408"`` is ``Answer(answer="408")``.

        Raises:
            ValueError: the reply is not an object, and the payload has no single field that
                the value fits.
            pydantic.ValidationError: the object's values do not match the fields.
        """
        if isinstance(data, dict):
            return cls.model_validate(data)
        field = _single_field(cls)
        if field is not None:
            try:
                return cls.model_validate({field: data})
            except ValidationError:
                pass  # the value does not fit the field either: say what shape is expected
        raise ValueError(
            f"the reply is JSON but not an object (got {_json_type(data)}); {cls.__name__} "
            f"needs an object with the fields {', '.join(cls.model_fields)}"
        )


def _single_field(cls: type[Payload]) -> str | None:
    """The field a bare reply fills: the one required field, else the only field, else None."""
    required = [name for name, info in cls.model_fields.items() if info.is_required()]
    if len(required) == 1:
        return required[0]
    if not required and len(cls.model_fields) == 1:
        return next(iter(cls.model_fields))
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


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


_FRACTION = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+(?:\.\d+)?)\s*$", re.I)
_PERCENT = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*%\s*$")


def normalise_score(value: Any) -> float | None:
    """A score in [0, 1] from what a model sent (see :attr:`Critique.score`).

    Raises:
        ValueError: the value cannot be read as a score (the message says what to send).
    """
    if value is None:
        return None
    hint = "give a number between 0 and 1, such as 0.8"
    if isinstance(value, bool):
        raise ValueError(f"score must be a number, not a boolean; {hint}")
    if isinstance(value, str):
        text = value.strip()
        if fraction := _FRACTION.match(text):
            top, bottom = float(fraction.group(1)), float(fraction.group(2))
            if bottom <= 0 or not 0 <= top <= bottom:
                raise ValueError(f"score {value!r} is not a fraction between 0 and 1; {hint}")
            return top / bottom
        if percent := _PERCENT.match(text):
            share = float(percent.group(1))
            if not 0 <= share <= 100:
                raise ValueError(f"score {value!r} is not a percentage from 0 to 100; {hint}")
            return share / 100
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"score {value!r} is not a number; {hint}") from None
    if not isinstance(value, int | float):
        raise ValueError(f"score must be a number, not {type(value).__name__}; {hint}")
    number = float(value)
    if math.isnan(number) or number < 0 or number > 100:
        raise ValueError(f"score {value!r} is outside 0 to 1 and cannot be rescaled; {hint}")
    if number <= 1:
        return number
    return number / 10 if number <= 10 else number / 100


class Critique(Payload):
    """A critic's judgement of a candidate solution."""

    approved: bool
    """True when the critic would ship the solution as it is."""
    issues: list[str] = []
    """Concrete problems, most important first."""
    score: float | None = Field(
        default=None, ge=0.0, le=1.0, description="An optional score between 0 and 1."
    )
    """An optional score between 0 and 1.

    What models send is normalised: ``"0.8"``, ``"8/10"`` and ``"4/5"``, ``"80%"``; a bare
    number above 1 is read on a 10-point scale up to 10 (``8`` -> 0.8) and as a percentage up to
    100 (``85`` -> 0.85). Anything else (negative, over 100, not a number) is refused with a
    message saying what to send."""

    @field_validator("score", mode="before")
    @classmethod
    def _normalise_score(cls, value: Any) -> Any:
        return normalise_score(value)

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
