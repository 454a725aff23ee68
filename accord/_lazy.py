"""Import optional dependencies lazily, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from accord.errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, *, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming ``pip install "accord[extra]"``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = package or module.split(".")[0]
        raise MissingDependencyError(
            f"{pkg} is not installed, and this feature needs it. Install the extra: "
            f'pip install "accord[{extra}]"',
            package=pkg,
            extra=extra,
        ) from exc
