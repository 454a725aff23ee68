"""Messages and payloads: frozen, typed, and exact through a JSON round trip."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

import accord
from accord.errors import AccordError, StoreDecodeError
from accord.messages import Message, Payload, Usage, payload_class, payload_kind

BUILTIN_PAYLOADS: list[Payload] = [
    accord.Plan(steps=["read the task", "answer it"], goal="an answer"),
    accord.Solution(answer="42", reasoning="6 * 7"),
    accord.Critique(approved=False, issues=["too long", "wrong unit"], score=0.25),
    accord.Verdict(accepted=True, reasons=["all tests pass"]),
    accord.Answer(answer="B", reasoning="B follows from the premises"),
    accord.Vote(answer="paris", counts={"paris": 2.0, "lyon": 1.0}),
]


class MessagesTestScore(Payload):
    """A user-defined payload, registered under its class name."""

    value: float
    comment: str = ""


class Rating(Payload, kind="custom.rating"):
    """A user-defined payload registered under an explicit kind."""

    stars: int


def _message(payload: Payload | None, **extra: object) -> Message:
    return Message(
        id="run1/critic/2",
        run_id="run1",
        sender="critic",
        recipients=("solver", "judge"),
        text=payload.as_text() if payload is not None else "plain text",
        payload=payload,
        usage=Usage(requests=2, prompt_tokens=120, completion_tokens=30, cost=0.0015),
        parents=("run1/solver/2", "run1/critic/1"),
        round=2,
        created_at=1_700_000_000.5,
        metadata={"route": "strong"},
        **extra,
    )


@pytest.mark.parametrize(
    "payload",
    [*BUILTIN_PAYLOADS, MessagesTestScore(value=0.5, comment="ok"), Rating(stars=4)],
    ids=lambda p: type(p).__name__,
)
def test_message_json_round_trip_keeps_every_payload_exactly(payload: Payload) -> None:
    message = _message(payload)

    restored = Message.model_validate_json(message.model_dump_json())

    assert restored == message
    assert type(restored.payload) is type(payload)
    assert restored.payload == payload


def test_message_json_round_trip_without_payload() -> None:
    message = _message(None)

    restored = Message.model_validate_json(message.model_dump_json())

    assert restored == message
    assert restored.payload is None
    assert restored.content == "plain text"


def test_message_json_tags_the_payload_with_its_kind() -> None:
    data = json.loads(_message(accord.Verdict(accepted=False)).model_dump_json())

    assert data["payload"] == {"kind": "Verdict", "accepted": False, "reasons": []}


def test_payload_kind_registry_finds_builtin_and_custom_kinds() -> None:
    assert payload_kind(accord.Critique) == "Critique"
    assert payload_kind(Rating) == "custom.rating"
    assert payload_class("custom.rating") is Rating
    assert payload_class("MessagesTestScore") is MessagesTestScore


def test_payload_kind_registered_twice_is_an_error() -> None:
    class First(Payload, kind="tests.messages.duplicate"):
        a: int

    with pytest.raises(AccordError, match="tests.messages.duplicate"):

        class Second(Payload, kind="tests.messages.duplicate"):
            b: str

    assert payload_class("tests.messages.duplicate") is First


def test_message_json_with_unknown_payload_kind_raises_store_decode_error() -> None:
    data = json.loads(_message(accord.Verdict(accepted=True)).model_dump_json())
    data["payload"]["kind"] = "os.system"

    with pytest.raises(StoreDecodeError, match="unknown payload kind 'os.system'"):
        Message.model_validate(data)


def test_message_json_payload_without_kind_raises_store_decode_error() -> None:
    data = json.loads(_message(accord.Verdict(accepted=True)).model_dump_json())
    del data["payload"]["kind"]

    with pytest.raises(StoreDecodeError, match="no 'kind'"):
        Message.model_validate(data)


def test_message_and_payload_are_frozen() -> None:
    message = _message(accord.Critique(approved=True))

    with pytest.raises(ValidationError):
        message.text = "changed"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        message.payload.approved = False  # type: ignore[union-attr,misc]


def test_payload_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="extra"):
        accord.Critique(approved=True, verdict="ship it")  # type: ignore[call-arg]


def test_usage_adds_field_by_field() -> None:
    total = Usage(requests=1, prompt_tokens=10, completion_tokens=5, cost=0.5) + Usage(
        requests=2, prompt_tokens=1, completion_tokens=2, cost=0.25
    )

    assert total == Usage(requests=3, prompt_tokens=11, completion_tokens=7, cost=0.75)
    assert total.total_tokens == 18


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        (accord.Plan(steps=["a", "b"], goal="g"), "Goal: g\n1. a\n2. b"),
        (accord.Solution(answer="42"), "42"),
        (accord.Critique(approved=False, issues=["x"]), "Not approved. Issues:\n- x"),
        (accord.Critique(approved=True, score=0.9), "Approved. Score: 0.9"),
        (accord.Verdict(accepted=False, reasons=["r"]), "Rejected.\n- r"),
        (accord.Answer(answer="B", reasoning="why"), "why\n\nAnswer: B"),
        (accord.Vote(answer="paris"), "paris"),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, Payload) else "",
)
def test_payload_as_text_reads_as_prose(payload: Payload, text: str) -> None:
    assert payload.as_text() == text
