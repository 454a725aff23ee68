"""The ACCORD_CRASH_AT test hook never breaks ``import accord``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "spec", ["no_such_point", "before_model_call:node", "before_model_call:node=a:round"]
)
def test_crash_hook_malformed_spec_warns_and_import_still_works(spec: str) -> None:
    env = {**os.environ, "ACCORD_CRASH_AT": spec, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", "import accord, accord._crash as c; print('armed', c.ARMED)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "armed False"
    assert "RuntimeWarning" in proc.stderr and "ACCORD_CRASH_AT is ignored" in proc.stderr


def test_crash_hook_well_formed_spec_is_armed() -> None:
    env = {**os.environ, "ACCORD_CRASH_AT": "before_model_call:node=a", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", "import accord._crash as c; print(c.ARMED, c._TARGET)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True ('before_model_call', {'node': 'a'})"
    assert proc.stderr == ""
