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


def test_extract_number_prefers_the_marked_answer_over_the_last_number() -> None:
    text = "I think the answer is 408. Reasoning: 17*24 = 340 + 68."
    assert extract_number(text) == "408"
    assert extract_number("The answer is 3.5.\nCheck: 3.5 * 2 = 7") == "3.5"
    assert extract_number("so \\boxed{\\frac{1}{2}} or \\boxed{7}") == "7"


def test_extract_number_keeps_leading_zeros_unless_asked_to_normalise() -> None:
    assert extract_number("Answer: 0579") == "0579"
    assert extract_number("the code is 007") == "007"
    assert extract_number("Answer: 0579", normalise=True) == "579"
    assert extract_number("Answer: 0.50") == "0.5"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I think the answer is 408. Reasoning: 17*24 = 340 + 68.", "408"),
        ("Reasoning: 17*24 = 340 + 68 = 408.\nAnswer: 408", "408"),
        ("**Final answer:** $1,000", "1000"),
        ("Answer: x = 5", "5"),
        ("Answer: 0579", "0579"),
        ("Answer: The Eiffel Tower.", "the eiffel tower"),
        ("408", "408"),
        ("Paris.", "paris"),
        ("Reasoning: 17*24 = 340 + 68.", None),
        ("def f(x):\n    if x < 0:\n        return -1\n    return 0\n", None),
        ("the product of the two numbers is large", None),
    ],
)
def test_extract_answer_reads_only_marked_or_bare_answers(text: str, expected: str | None) -> None:
    from accord.ensemble._extract import resolve_extractor

    assert resolve_extractor("answer")(text) == expected


def test_extract_answer_line_wins_over_a_quoted_answer_phrase() -> None:
    from accord.ensemble._extract import extract_answer

    text = "Answer: 408\nAgent b says the answer is 407, but 17*24 is 408."
    assert extract_answer(text) == "408" and extract_number(text) == "408"
