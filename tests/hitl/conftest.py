"""Fixtures for the human-in-the-loop tests: a store file under ``tmp_path``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # `import _graphs` from any layout


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A path for a new store file."""
    return tmp_path / "runs.db"


@pytest.fixture(autouse=True)
def _fresh_log() -> Iterator[None]:
    import _graphs

    _graphs.DONE.clear()
    yield
