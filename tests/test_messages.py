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


# ------------------------------------------------------------------ what models really send


def test_payload_accepts_numbers_for_text_in_every_payload_class() -> None:
    assert accord.Answer.model_validate({"answer": 4032}).answer == "4032"
    assert accord.Solution.model_validate({"answer": -1.5}).answer == "-1.5"
    assert accord.Plan.model_validate({"steps": [1, "two"]}).steps == ["1", "two"]
    assert MessagesTestScore.model_validate({"value": 0.5, "comment": 7}).comment == "7"


@pytest.mark.parametrize(
    ("text", "expected"), [("true", True), ("false", False), ("True", True), ("no", False)]
)
def test_payload_accepts_boolean_words(text: str, expected: bool) -> None:
    assert accord.Verdict.model_validate({"accepted": text}).accepted is expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("408", accord.Answer(answer="408")),
        (408, accord.Answer(answer="408")),
        (["a", "b"], accord.Plan(steps=["a", "b"])),
        ("true", accord.Verdict(accepted=True)),
        (3, Rating(stars=3)),
    ],
)
def test_payload_from_reply_puts_a_bare_value_in_the_single_required_field(
    reply: object, expected: Payload
) -> None:
    assert type(expected).from_reply(reply) == expected


@pytest.mark.parametrize(
    ("cls", "reply"),
    [(MessagesTestScore, "x"), (accord.Critique, [1, 2]), (accord.Answer, None)],
)
def test_payload_from_reply_refuses_a_bare_value_that_fits_no_single_field(
    cls: type[Payload], reply: object
) -> None:
    with pytest.raises(ValueError, match=f"not an object .*{cls.__name__} needs an object"):
        cls.from_reply(reply)


@pytest.mark.parametrize(
    ("sent", "score"),
    [
        (0.8, 0.8),
        (1, 1.0),
        (0, 0.0),
        (8, 0.8),
        (8.5, 0.85),
        (10, 1.0),
        (85, 0.85),
        ("0.8", 0.8),
        ("8/10", 0.8),
        ("4 / 5", 0.8),
        ("8 out of 10", 0.8),
        ("80%", 0.8),
        (None, None),
    ],
)
def test_critique_score_normalises_what_models_send(sent: object, score: float | None) -> None:
    critique = accord.Critique.model_validate({"approved": True, "score": sent})
    assert critique.score == pytest.approx(score) if score is not None else critique.score is None


@pytest.mark.parametrize(
    ("sent", "problem"),
    [
        (-0.5, "outside 0 to 1"),
        (250, "outside 0 to 1"),
        (float("nan"), "outside 0 to 1"),
        ("11/10", "not a fraction between 0 and 1"),
        ("120%", "not a percentage"),
        ("excellent", "not a number"),
        (True, "not a boolean"),
        ([8], "not list"),
    ],
)
def test_critique_score_out_of_range_is_refused_with_what_to_send(
    sent: object, problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem) as info:
        accord.Critique.model_validate({"approved": True, "score": sent})
    assert "give a number between 0 and 1" in str(info.value)


def test_critique_score_schema_tells_the_model_its_range() -> None:
    score = accord.Critique.model_json_schema()["properties"]["score"]
    number = next(s for s in score["anyOf"] if s.get("type") == "number")
    assert (number["minimum"], number["maximum"]) == (0.0, 1.0)
