"""The cooperative decoding example runs on tiny local models (in process and on its command line)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ask

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> ModuleType:
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLES))


async def test_example_cooperative_decoding_runs_each_decoder(models: dict[str, Path]) -> None:
    from accord.backends.hf import HFBackend

    target = HFBackend(str(models["target"]))
    results = await example("cooperative_decoding").run(
        "bad cafe", target, str(models["close"]), str(models["stranger"]), max_tokens=12
    )
    assert list(results) == ["speculative", "contrastive", "proxy-tuned"]
    alone = await target.complete(ask("bad cafe", max_tokens=12))
    assert results["speculative"].text == alone.text  # the target's own greedy text
    assert all(len(r.usage.by_model) >= 2 for r in results.values())


@pytest.mark.slow
def test_example_cooperative_decoding_command_line(models: dict[str, Path]) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(EXAMPLES.parent)}
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "cooperative_decoding.py"),
            "abc",
            "--target",
            f"hf:{models['target']}",
            "--draft",
            f"hf:{models['close']}",
            "--max-tokens",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--- speculative" in done.stdout and "--- contrastive" in done.stdout
