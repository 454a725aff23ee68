"""Answer extractors: what each built-in reads and how it normalises."""

from __future__ import annotations

import pytest

from accord.ensemble import (
    extract_choice,
    extract_code,
    extract_exact,
    extract_number,
    extract_text,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The total is 1,234.50 dollars", "1234.5"),
        ("42.0", "42"),
        ("first 3 then 7", "7"),
        ("Answer: 12\nCheck: 12 < 50", "12"),
        ("so \\boxed{3/4} it is", "0.75"),
        ("-5 degrees", "-5"),
        ("#### 1000", "1000"),
        ("no numbers here", None),
        ("division 1/0", None),
    ],
)
def test_extract_number_reads_the_final_number_canonically(text: str, expected: str | None) -> None:
    assert extract_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("(C)", "C"), ("The answer is D.", "D"), ("answer: a", None), ("A", "A"), ("none", None)],
)
def test_extract_choice_reads_a_letter(text: str, expected: str | None) -> None:
    assert extract_choice(text) == expected


def test_extract_code_takes_the_last_fenced_block_and_trims_edges() -> None:
    text = "run it:\n```\nfirst\n```\nthen\n```text\n\n  out 1  \nout 2\n\n```"
    assert extract_code(text) == "  out 1\nout 2"
    assert extract_code("   \n  ") is None


def test_extract_text_normalises_case_space_and_final_punctuation() -> None:
    assert extract_text("Reasoning...\nAnswer:   The  Eiffel Tower. ") == "the eiffel tower"
    assert extract_text("Paris!") == "paris"
    assert extract_text("  ") is None
    assert extract_exact("  Paris ") == "Paris"
