"""Fixtures for merge tests: tiny model families saved to disk (see ``_merge_helpers``).

The environment is set for offline, one-thread torch before anything imports it.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from _merge_helpers import LAYERS, llama, load_state, perturbed, save  # noqa: E402

from accord._tiny import byte_tokenizer, tiny_gpt2, tiny_llama  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def family(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``base``, forks ``a``, ``b``, ``c`` (unsharded) and ``a_sharded``/``b_sharded``/``base_sharded``."""
    root = tmp_path_factory.mktemp("family")
    tokenizer = byte_tokenizer()
    folders: dict[str, Path] = {}
    folders["base"] = save(llama(), tokenizer, root / "base")
    folders["base_sharded"] = save(llama(), tokenizer, root / "base_sharded", sharded=True)
    for name, seed, scale in (("a", 1, 0.01), ("b", 2, 0.02), ("c", 3, 0.015)):
        folders[name] = save(perturbed(llama(), seed, scale), tokenizer, root / name)
        folders[f"{name}_sharded"] = save(
            perturbed(llama(), seed, scale), tokenizer, root / f"{name}_sharded", sharded=True
        )
    return folders


@pytest.fixture(scope="session")
def states(family: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """The tensors of each model of :func:`family`."""
    return {name: load_state(folder) for name, folder in family.items()}


@pytest.fixture(scope="session")
def odd_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Models that must not merge with :func:`family`: other width, vocabulary, architecture."""
    root = tmp_path_factory.mktemp("odd")
    tokenizer = byte_tokenizer()
    folders = {
        "wider": save(llama(intermediate=96), tokenizer, root / "wider"),
        "gpt2": save(
            tiny_gpt2(tokenizer, hidden=32, layers=LAYERS, heads=4), tokenizer, root / "gpt2"
        ),
        "tied": save(
            tiny_llama(tokenizer, hidden=32, layers=LAYERS, heads=4, tie_embeddings=True),
            tokenizer,
            root / "tied",
        ),
    }
    # A fork whose vocabulary grew by 3 tokens at the end: its embeddings and LM head have 3 more rows.
    grown = perturbed(llama(), 5, 0.01)
    grown.resize_token_embeddings(len(tokenizer) + 3)
    folders["grown"] = save(grown, tokenizer, root / "grown")
    return folders


@pytest.fixture
def copy_model(tmp_path: Path) -> Callable[[Path, str], Path]:
    """Copy a model folder under ``tmp_path`` (to damage it safely)."""
    import shutil

    def copy(folder: Path, name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(folder, target)
        return target

    return copy
