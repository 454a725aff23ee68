"""accord.ensemble's public names, and that importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import accord.ensemble


def test_ensemble_all_names_resolve() -> None:
    for name in accord.ensemble.__all__:
        assert getattr(accord.ensemble, name) is not None, name
    assert len(set(accord.ensemble.__all__)) == len(accord.ensemble.__all__)


def test_importing_accord_ensemble_does_not_import_torch_or_transformers() -> None:
    code = (
        "import sys, accord.ensemble as e; "
        "assert e.vote and e.Router and e.Cascade; "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
