"""Named crash points for durability tests: kill the process with SIGKILL at a chosen moment.

Tests set ``ACCORD_CRASH_AT`` in a subprocess's environment, for example
``after_model_response_before_persist:node=critic:round=1``: the first time the named point is
reached with facts that match every ``key=value`` given, the process sends itself ``SIGKILL`` (no
cleanup, no ``finally`` blocks, no flush), which is what a power cut or an OOM kill looks like to
the run store. The points:

- ``before_model_call``: an activation is about to call its model (facts: node, round);
- ``after_model_response_before_persist``: a model call returned, nothing of it is stored yet;
- ``mid_store_transaction``: inside the store's write transaction, before the commit;
- ``after_store_commit``: an activation's record is committed.

Caveat: the variable is read once, at import; a malformed value is ignored with a
``RuntimeWarning`` (a test hook must never break ``import accord``). With it unset or malformed
:data:`ARMED` is False and callers skip :func:`crash_point` entirely (``if _crash.ARMED: ...``),
so production code pays one attribute read per point. This is a test hook, not an API.
"""

from __future__ import annotations

import os
import signal
import warnings

__all__ = ["ARMED", "POINTS", "crash_point", "parse"]

POINTS = frozenset(
    {
        "before_model_call",
        "after_model_response_before_persist",
        "mid_store_transaction",
        "after_store_commit",
    }
)


def parse(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``name:key=value:key=value`` into the point's name and the facts it must match.

    Raises:
        ValueError: an unknown point name or a fact without ``=``.
    """
    name, *parts = spec.strip().split(":")
    if name not in POINTS:
        raise ValueError(
            f"ACCORD_CRASH_AT names unknown crash point {name!r}; known: {', '.join(sorted(POINTS))}"
        )
    facts: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"ACCORD_CRASH_AT fact {part!r} is not key=value")
        facts[key] = value
    return name, facts


def _target(spec: str) -> tuple[str, dict[str, str]] | None:
    """The armed point, or None; a malformed spec is ignored with a warning, never an error."""
    if not spec.strip():
        return None
    try:
        return parse(spec)
    except ValueError as exc:
        warnings.warn(
            f"{exc}; ACCORD_CRASH_AT is ignored, no crash point is armed. Unset it, or give "
            "NAME:key=value:... with a known point name.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


_TARGET = _target(os.environ.get("ACCORD_CRASH_AT", ""))
ARMED: bool = _TARGET is not None
"""True when a crash point is set for this process (tests only)."""


def crash_point(name: str, **facts: object) -> None:
    """Kill this process with SIGKILL if ``ACCORD_CRASH_AT`` names this point and these facts."""
    if _TARGET is None:
        return
    want_name, want = _TARGET
    if name != want_name:
        return
    for key, value in want.items():
        if str(facts.get(key)) != value:
            return
    os.kill(os.getpid(), signal.SIGKILL)
