"""A function's signature and Google-style docstring as a pydantic model and a JSON schema.

The arguments model validates what a model sends the way ``pydantic.validate_call`` would (lax
mode: ``"3"`` is accepted for an ``int``); its JSON schema, with each parameter's description
from the docstring's ``Args:`` section, is what the model sees.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from accord.errors import ConfigError

__all__ = ["parse_docstring", "arguments_model", "json_schema"]

_SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Example|Examples|Note|Notes|Caveat)\s*:\s*$"
)
_ARG = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The summary (text before the first section) and ``{parameter: description}`` from a
    Google-style docstring's ``Args:`` section (continuation lines are joined)."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    arg_indent: int | None = None
    for line in lines:
        heading = _SECTION.match(line)
        if heading:
            section = heading.group(1)
            current, arg_indent = None, None
            continue
        if section is None:
            summary.append(line)
            continue
        if section not in ("Args", "Arguments", "Parameters") or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        match = _ARG.match(line.strip())
        if match and (arg_indent is None or indent <= arg_indent):
            arg_indent = indent
            current = match.group(1).lstrip("*")
            args[current] = match.group(2).strip()
        elif current is not None:
            args[current] = f"{args[current]} {line.strip()}".strip()
    text = " ".join(" ".join(summary).split())
    return text, args


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


def arguments_model(
    fn: Callable[..., Any], name: str, descriptions: dict[str, str]
) -> type[BaseModel]:
    """A pydantic model of ``fn``'s parameters (``*args``/``**kwargs`` are refused).

    Raises:
        ConfigError: the function takes ``*args``/``**kwargs`` or a parameter has no annotation
            pydantic can use.
    """
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise ConfigError(
            f"tool {name!r}: its type hints cannot be resolved ({exc}). Use types importable "
            "where the function is defined."
        ) from exc
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(
                f"tool {name!r}: *{param.name} parameters cannot be described to a model; "
                "name each argument."
            )
        annotation = hints.get(param.name, Any)
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (
            annotation,
            Field(default, description=descriptions.get(param.name) or None),
        )
    try:
        return create_model(f"{name}_arguments", __base__=_Arguments, **fields)
    except Exception as exc:  # pydantic's schema errors for unusable annotations
        raise ConfigError(f"tool {name!r}: its parameters cannot be validated ({exc}).") from exc


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema without pydantic's titles (models need only types and text)."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    schema.setdefault("properties", {})
    return schema
