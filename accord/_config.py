"""Process-wide settings: the run store the library records into when a run names none.

The library records a run only when it is given a store: ``graph.run(..., store=...)``, a store set
once with :func:`configure`, or the ``ACCORD_STORE`` environment variable (a path), in that order.
Nothing is recorded otherwise. The ``accord`` command records into ``./.accord/runs.db`` unless
``ACCORD_STORE`` says otherwise.

Caveat: :func:`configure` holds the store object it is given; closing that store also clears it
here (a closed store is never used again).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["configure", "configured_store"]

_UNSET: Any = object()
_store: Any = None


def configure(*, store: Any = _UNSET) -> None:
    """Set process-wide defaults.

    Args:
        store: the run store every run records into unless it names its own: a path, a store
            from :func:`accord.open_store`, or None to record nothing by default (the default).

    Example::

        accord.configure(store="runs.db")      # every graph.run() is now recorded there
        accord.configure(store=None)           # and now nothing is
    """
    global _store
    if store is not _UNSET:
        if store is not None and not isinstance(store, str | os.PathLike):
            if not callable(getattr(store, "write", None)):
                from accord.errors import ConfigError

                raise ConfigError(
                    f"configure(store=...) takes a path or a run store (accord.open_store(path)), "
                    f"not {type(store).__name__}."
                )
        _store = store


def configured_store() -> Any:
    """The store a run without ``store=`` records into: :func:`configure`'s, else
    ``ACCORD_STORE``, else None (nothing is recorded)."""
    if _store is not None:
        if getattr(_store, "closed", False):
            return None
        return _store
    return os.environ.get("ACCORD_STORE") or None


def forget(store: Any) -> None:
    """Drop ``store`` from the settings (called when it is closed)."""
    global _store
    if _store is store:
        _store = None
