"""Answer extractors: read the final answer out of a model's reply and normalise it.

An extractor is a function ``(text) -> str | None``: the normalised answer, or None when the text
holds no answer it can read (the candidate then abstains). Votes compare the normalised strings,
so two replies agree when their extracted answers are equal.

Built-in extractors, by name:

- ``"number"``: the final number (after ``Answer:``, ``####`` or ``\\boxed{}`` when present,
  else the last number in the text), written canonically: ``"1,000.50"`` and ``"1000.5"`` both
  give ``"1000.5"``, ``"42.0"`` gives ``"42"``, ``"3/4"`` gives ``"0.75"``.
- ``"choice"``: a multiple-choice letter A-J (``"The answer is (B)."`` gives ``"B"``).
- ``"code"``: program output: the last fenced block if any, else the text, with trailing spaces
  and blank edge lines removed.
- ``"text"``: the final ``Answer:`` line if any, else the text, lower-cased, whitespace collapsed,
  trailing punctuation dropped.
- ``"exact"``: the text with only its outer whitespace stripped.

Caveat: ``"number"`` reads the *last* number when there is no answer marker, so a reply that
ends with a check ("... = 42, and 42 < 50") may be read as 50; ask models for an ``Answer:`` line.
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
    "extract_number",
    "extract_choice",
    "extract_code",
    "extract_text",
    "extract_exact",
]

Extractor = Callable[[str], str | None]
"""``(text) -> normalised answer``, or None when the text holds no readable answer."""

_ANSWER_LINE = re.compile(r"(?im)^\s*(?:final\s+)?answer\s*[:：]\s*(.+?)\s*$")
_HASHES = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_NUMBER = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:/\d+)?")
_CHOICE_MARKED = re.compile(
    r"(?i:answer|choice|option)\s*(?i:is|:)?\s*[:(\[]?\s*([A-J])\b(?![a-z'])"
)
_CHOICE_ALONE = re.compile(r"^\s*[(\[]?([A-J])[)\].:]?\s*$")
_CHOICE_PAREN = re.compile(r"\(([A-J])\)")
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


def final_answer(text: str) -> str:
    """The content of the last ``Answer:`` line, or the whole text when there is none."""
    found = _ANSWER_LINE.findall(text)
    return found[-1] if found else text


def _canonical_number(raw: str) -> str | None:
    token = raw.replace(",", "").replace("−", "-").lstrip("+")
    if not token or token in ("-", ".", "-."):
        return None
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


def extract_number(text: str) -> str | None:
    """The final number of a reply, canonically written (see module docstring)."""
    for pattern in (_BOXED, _HASHES, _ANSWER_LINE):
        marked = pattern.findall(text)
        if marked:
            found = _numbers(marked[-1])
            if found:
                return _canonical_number(found[0])
    found = _numbers(text)
    return _canonical_number(found[-1]) if found else None


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
