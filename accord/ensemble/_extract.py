"""Answer extractors: read the final answer out of a model's reply and normalise it.

An extractor is a function ``(text) -> str | None``: the normalised answer, or None when the text
holds no answer it can read (the candidate then abstains). Votes compare the normalised strings,
so two replies agree when their extracted answers are equal.

Explicit answer markers come first, wherever an extractor reads a final answer: the last
``Answer: ...`` line (``Final answer:`` too), else the last ``\\boxed{...}``, ``#### ...`` or "the
answer is ..." (in that order). So "I think the answer is 408. Reasoning: 17*24 = 340 + 68."
gives 408, not 68.

Built-in extractors, by name:

- ``"answer"``: the marked answer, read as a number when it is one (``"Answer: $1,000"`` gives
  ``"1000"``), else as text (as ``"text"`` normalises it). A reply with no marker gives no answer
  unless the whole reply is a short bare answer (``"408"``, ``"New York."``: one line, at most
  three words). Debates use it.
- ``"number"``: the number of the marked answer, else the last number in the text, written
  canonically: ``"1,000.50"`` and ``"1000.5"`` both give ``"1000.5"``, ``"42.0"`` gives ``"42"``,
  ``"3/4"`` gives ``"0.75"``; a number written with leading zeros (``"0579"``) is kept as written
  (``extract_number(text, normalise=True)`` gives ``"579"``).
- ``"choice"``: a multiple-choice letter A-J (``"The answer is (B)."`` gives ``"B"``).
- ``"code"``: program output: the last fenced block if any, else the text, with trailing spaces
  and blank edge lines removed.
- ``"text"``: the marked answer if any, else the text, lower-cased, whitespace collapsed,
  trailing punctuation dropped.
- ``"exact"``: the text with only its outer whitespace stripped.

Caveat: ``"number"`` falls back to the *last* number when there is no answer marker, so a reply
that ends with a check ("... = 42, and 42 < 50") may be read as 50; ask models for an ``Answer:``
line, or use ``"answer"``, which counts such a reply as no answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from accord.errors import ConfigError

__all__ = [
    "Extractor",
    "EXTRACTORS",
    "resolve_extractor",
    "final_answer",
    "marked_answer",
    "is_numeric_question",
    "extract_answer",
    "normalise_answer",
    "extract_number",
    "extract_choice",
    "extract_code",
    "extract_text",
    "extract_exact",
]

Extractor = Callable[[str], str | None]
"""``(text) -> normalised answer``, or None when the text holds no readable answer."""

_ANSWER_LINE = re.compile(
    r"(?im)^[\s*_#>`-]*(?:the\s+)?(?:final\s+)?answer[*_`]*\s*[:：][*_`\s]*(.*?)\s*$"
)
_HASHES = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_ANSWER_IS = re.compile(
    r"(?i)\b(?:final\s+)?answer[*_`]*\s+(?:is|would\s+be|should\s+be|=)\s*:?\s*"
    r"(.+?)\s*(?=\.\s|\.?$|\n|;)",
    re.MULTILINE,
)
_MARKERS = (_ANSWER_LINE, _BOXED, _HASHES, _ANSWER_IS)
_EDGES = " \t*_`\"'“”"
_NUMBER_ALONE = re.compile(
    r"^[$€£¥(\s]*([-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:/\d+)?)"
    r"\s*(?:%|°|[a-zA-Z]+)?[\s).!]*$"
)
_NUMERIC_TASK = re.compile(
    r"\d\s*[-+*/×÷^x]\s*\d|\bhow\s+(?:many|much|far|long|old)\b"
    r"|\b(?:calculate|compute|evaluate|sum|product|difference|quotient|total|percent)\b",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:/\d+)?")
_CHOICE_MARKED = re.compile(
    r"(?i:answer|choice|option)\s*(?i:is|:)?\s*[:(\[]?\s*([A-J])\b(?![a-z'])"
)
_CHOICE_ALONE = re.compile(r"^\s*[(\[]?([A-J])[)\].:]?\s*$")
_CHOICE_PAREN = re.compile(r"\(([A-J])\)")
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


def _marks(text: str) -> list[str]:
    """Every marked answer in ``text``, most trusted last: "the answer is ..." phrases, then
    ``####``, then ``\\boxed{}``, then ``Answer:`` lines; within a kind, in text order."""
    found: list[str] = []
    for pattern in reversed(_MARKERS):
        for match in pattern.finditer(text):
            content = match.group(1).strip(_EDGES).rstrip(".").strip(_EDGES)
            if content:
                found.append(content)
    return found


def marked_answer(text: str) -> str | None:
    """The explicitly marked answer of ``text``, without markdown emphasis or a final full stop;
    None when it has none.

    The last ``Answer:`` line wins, then the last ``\\boxed{}``, the last ``####`` line, and
    the last "the answer is ..." phrase (a phrase may quote another agent's answer, a line
    written as the prompt asks may not).
    """
    found = _marks(text)
    return found[-1] if found else None


def final_answer(text: str) -> str:
    """The last marked answer (see :func:`marked_answer`), or the whole text when there is none."""
    found = marked_answer(text)
    return text if found is None else found


def is_numeric_question(task: str) -> bool:
    """Whether ``task`` asks for a number: arithmetic (``17 * 24``), "how many/much", "compute"."""
    return bool(_NUMERIC_TASK.search(task))


def _canonical_number(raw: str, normalise: bool = True) -> str | None:
    token = raw.replace(",", "").replace("−", "-").lstrip("+")
    if not token or token in ("-", ".", "-."):
        return None
    digits = token.lstrip("-").split(".")[0].split("/")[0]
    if not normalise and len(digits) > 1 and digits.startswith("0"):
        return token  # "0579" is a code or an id, not the quantity 579: keep it as written
    try:
        if "/" in token:
            top, bottom = token.split("/", 1)
            denominator = Decimal(bottom)
            if denominator == 0:
                return None
            value = Decimal(top) / denominator
        else:
            value = Decimal(token)
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _numbers(text: str) -> list[str]:
    return [m.group(0) for m in _NUMBER.finditer(text) if any(c.isdigit() for c in m.group(0))]


def _marked_number(answer: str, normalise: bool) -> str | None:
    """The number a marked answer gives: the one after its last ``=``, else its first."""
    found = _numbers(answer.rsplit("=", 1)[-1]) or _numbers(answer)
    return _canonical_number(found[0], normalise) if found else None


def extract_number(text: str, *, normalise: bool = False) -> str | None:
    """The final number of a reply, canonically written (see module docstring).

    Args:
        text: the reply.
        normalise: also drop leading zeros (``"0579"`` gives ``"579"``); by default a number
            written with leading zeros is kept as written.
    """
    for answer in reversed(_marks(text)):
        number = _marked_number(answer, normalise)
        if number is not None:
            return number
    found = _numbers(text)
    return _canonical_number(found[-1], normalise) if found else None


def _bare(text: str) -> str | None:
    """``text`` itself when it is a short bare answer: one line of at most three words."""
    stripped = text.strip().strip(_EDGES).rstrip(".").strip()
    if not stripped or "\n" in stripped or len(stripped) > 40 or len(stripped.split()) > 3:
        return None
    return stripped


def extract_answer(text: str) -> str | None:
    """The marked answer (or a bare short reply), as a number when it is one, else as text.

    A reply with no answer marker that is more than a short bare answer gives None: its last
    number is not taken for its answer.
    """
    answer = marked_answer(text)
    if answer is None:
        answer = _bare(text)
    return None if answer is None else normalise_answer(answer)


def normalise_answer(answer: str) -> str | None:
    """An answer already found, written for voting: a number canonically (what follows its last
    ``=``; leading zeros kept), anything else as :func:`extract_text` normalises it."""
    last = answer.rsplit("=", 1)[-1].strip()
    alone = _NUMBER_ALONE.match(last)
    if alone and any(c.isdigit() for c in alone.group(1)):
        number = _canonical_number(alone.group(1), normalise=False)
        if number is not None:
            return number
    return extract_text(answer)


def extract_choice(text: str) -> str | None:
    """A multiple-choice letter (A-J), upper case, or None."""
    marked = _CHOICE_MARKED.findall(text)
    if marked:
        return str(marked[-1]).upper()
    alone = _CHOICE_ALONE.match(text)
    if alone:
        return alone.group(1)
    parens = _CHOICE_PAREN.findall(text)
    return str(parens[-1]) if parens else None


def extract_code(text: str) -> str | None:
    """Program output: the last fenced block (or the text), edges and trailing spaces trimmed."""
    blocks = _FENCE.findall(text)
    body = blocks[-1] if blocks else text
    lines = [line.rstrip() for line in body.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) if lines else None


def extract_text(text: str) -> str | None:
    """The final answer, lower-cased, whitespace collapsed, trailing punctuation dropped."""
    answer = " ".join(final_answer(text).split()).casefold().rstrip(".!?;:, ")
    return answer or None


def extract_exact(text: str) -> str | None:
    """The text with its outer whitespace stripped (None when nothing is left)."""
    stripped = text.strip()
    return stripped or None


EXTRACTORS: dict[str, Extractor] = {
    "answer": extract_answer,
    "number": extract_number,
    "choice": extract_choice,
    "code": extract_code,
    "text": extract_text,
    "exact": extract_exact,
}
"""The built-in extractors by name."""


def resolve_extractor(extract: str | Extractor | None) -> Extractor:
    """An extractor from its name, a function, or None (``"text"``).

    Raises:
        ConfigError: an unknown name (the message lists the known ones).
    """
    if extract is None:
        return extract_text
    if isinstance(extract, str):
        found = EXTRACTORS.get(extract)
        if found is None:
            raise ConfigError(
                f"unknown answer extractor {extract!r}. Use one of "
                + ", ".join(repr(n) for n in EXTRACTORS)
                + ", or pass a function (text) -> str | None."
            )
        return found
    if not callable(extract):
        raise ConfigError(f"extract must be a name or a function, not {type(extract).__name__}.")
    return extract
