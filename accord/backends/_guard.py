"""The switch that forbids real model calls (``accord.testing.forbid_real_backends``).

Real backends call :func:`check_real_call_allowed` before they reach a provider or load a model.
"""

from __future__ import annotations

from accord.errors import UsageError

__all__ = ["check_real_call_allowed", "set_forbidden", "is_forbidden"]

_forbidden = False


def set_forbidden(value: bool) -> bool:
    """Set the switch; returns its previous value."""
    global _forbidden
    previous, _forbidden = _forbidden, value
    return previous


def is_forbidden() -> bool:
    return _forbidden


def check_real_call_allowed(backend_name: str) -> None:
    """Raise when real backends are forbidden (inside ``forbid_real_backends()``)."""
    if _forbidden:
        raise UsageError(
            f"backend {backend_name!r} would make a real model call, but real backends are "
            "forbidden here (accord.testing.forbid_real_backends). Use ScriptedBackend or "
            "FunctionBackend from accord.testing, or leave the forbid_real_backends() block."
        )
