"""The parsers that read LLM judges' replies (scores and A/B preferences)."""

from __future__ import annotations

import pytest

from accord.ensemble._judging import parse_preference, parse_score


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("7", 0.7),
        ("Score: 8/10", 0.8),
        ('{"score": 0.25}', 0.25),
        ('{"score": 9}', 0.9),
        ('{"accepted": false, "reasons": ["wrong"]}', 0.0),
        ("Yes.", 1.0),
        ("No, the sum is wrong", 0.0),
        ("no opinion", None),
        ("42", None),
        ("I cannot rate this", None),
    ],
)
def test_parse_score_reads_numbers_json_and_verdict_words(
    reply: str, expected: float | None
) -> None:
    assert parse_score(reply) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("A", "A"),
        (" 'b'. ", "B"),
        ('{"winner": "B"}', "B"),
        ("Response B is better than response A", "B"),
        ("I prefer A", "A"),
        ("A and B are equally good", None),
        ("neither", None),
    ],
)
def test_parse_preference_reads_a_clear_letter_only(reply: str, expected: str | None) -> None:
    assert parse_preference(reply) == expected
