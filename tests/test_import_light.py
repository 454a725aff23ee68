"""``import accord`` stays light: heavy and optional dependencies load only when used."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "torch",
    "transformers",
    "safetensors",
    "numpy",
    "openai",
    "httpx",
    "tenacity",
    "networkx",
    "structlog",
    "typer",
    "rich",
    "yaml",
    "accord.backends.openai",
    "accord.backends.hf",
    "accord.merge",
)


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_accord_loads_no_heavy_dependency() -> None:
    loaded = _modules_after("import accord")

    assert "accord" in loaded
    assert sorted(loaded & set(HEAVY)) == []


def test_running_a_graph_with_a_fake_backend_loads_no_model_sdk() -> None:
    code = (
        "import accord\n"
        "from accord.testing import ScriptedBackend\n"
        "g = accord.Graph('g').add(accord.Agent('a'))\n"
        "g.run_sync('t', ScriptedBackend({'a': ['x']}))\n"
    )

    loaded = _modules_after(code)

    assert sorted(loaded & {"torch", "transformers", "openai", "httpx", "safetensors"}) == []
    assert "networkx" in loaded  # validation imports it on first use
