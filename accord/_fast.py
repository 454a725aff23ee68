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
_new = object.__new__
_slots = BaseModel.__dict__
_set_fields_set = _slots["__pydantic_fields_set__"].__set__
_set_extra = _slots["__pydantic_extra__"].__set__
_set_private = _slots["__pydantic_private__"].__set__


_fields_sets: dict[type[BaseModel], set[str]] = {}
"""One "fields set" per class, shared by its instances: every field is always given, so the set
is the same for all of them (and adding a field name that is already in it changes nothing)."""


def construct(cls: type[M], /, **fields: Any) -> M:
    """An instance of ``cls`` holding ``fields`` as they are (all fields must be given)."""
    obj = _new(cls)
    _set(obj, "__dict__", fields)
    try:
        shared = _fields_sets[cls]
    except KeyError:
        shared = set(fields)
        if len(shared) == len(cls.model_fields):
            _fields_sets[cls] = shared
    _set_fields_set(obj, shared)
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj
