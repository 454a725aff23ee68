"""Build frozen pydantic models without validation, on hot paths, from already-valid data.

``pydantic.BaseModel.model_construct`` costs several microseconds per call because it walks every
field; the scheduler builds several models per activation from values it made itself, so it uses
:func:`construct`, which sets the instance dictionary directly. Caveat: every field must be given,
with a value of the right type: nothing is checked.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["construct"]

M = TypeVar("M", bound=BaseModel)

_set = object.__setattr__


def construct(cls: type[M], /, **fields: Any) -> M:
    """An instance of ``cls`` holding ``fields`` as they are (all fields must be given)."""
    obj = cls.__new__(cls)
    _set(obj, "__dict__", fields)
    _set(obj, "__pydantic_fields_set__", set(fields))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj
