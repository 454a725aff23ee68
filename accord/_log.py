"""accord's loggers: structlog events that stay quiet unless the application opts in.

``log = get_logger(__name__)`` then ``log.debug("activation_finished", node=..., round=...)``.
When the application has configured structlog, events go through its configuration. When it has
not, they go to the standard ``logging`` module under the ``accord`` hierarchy, where (with no
handler configured) only warnings and errors show: a library must be quiet by default. The library
never calls ``structlog.configure``. Hot paths guard their events with :meth:`Logger.debug_enabled`
so nothing is built for events nobody reads.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["get_logger", "Logger"]


class Logger:
    """A structlog-style logger bound to a module name."""

    __slots__ = ("name", "_std")

    def __init__(self, name: str) -> None:
        self.name = name
        self._std = logging.getLogger(name)

    def debug_enabled(self) -> bool:
        """Whether a debug event would be read by anyone (cheap; use it on hot paths)."""
        return _structlog_configured() or self._std.isEnabledFor(logging.DEBUG)

    def _emit(self, level: int, event: str, kw: dict[str, Any]) -> None:
        if _structlog_configured():
            import structlog

            getattr(structlog.get_logger(self.name), logging.getLevelName(level).lower())(
                event, **kw
            )
        elif self._std.isEnabledFor(level):
            fields = " ".join(f"{k}={v!r}" for k, v in kw.items())
            self._std.log(
                level, "%s %s", event, fields, extra={"accord_event": event, "accord_fields": kw}
            )

    def debug(self, event: str, **kw: Any) -> None:
        self._emit(logging.DEBUG, event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._emit(logging.INFO, event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._emit(logging.WARNING, event, kw)

    def error(self, event: str, **kw: Any) -> None:
        self._emit(logging.ERROR, event, kw)


def _structlog_configured() -> bool:
    # An application that never imported structlog cannot have configured it; checking
    # sys.modules first keeps structlog's import (and its cost) out of ``import accord``.
    structlog = sys.modules.get("structlog")
    return structlog is not None and bool(structlog.is_configured())


def get_logger(name: str) -> Logger:
    """The logger for module ``name``."""
    return Logger(name)
