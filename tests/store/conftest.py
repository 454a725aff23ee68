"""Fixtures for the run-store tests: a store file under ``tmp_path`` and the scenario subprocess.

Every test passes its store explicitly (nothing here touches ``./.accord``): the library records
only into a store it is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # `import _scenario` from any layout


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A path for a new store file."""
    return tmp_path / "runs.db"
