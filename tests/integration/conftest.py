"""Fixtures for tests against real third-party servers on 127.0.0.1 (marked ``server``).

``llama_server`` serves a tiny GGUF model with llama-cpp-python for the whole session; tests that
need it are skipped, with the reason, where ``llama-cpp-python[server]`` is not installed
(``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helpers importable from any layout

from llama_server import LlamaServer, missing_reason, start_llama_server  # noqa: E402


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's server on a free port, serving a freshly written tiny GGUF model."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    try:
        server = start_llama_server(tmp_path_factory.mktemp("llama"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def loopback_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy for 127.0.0.1 and no ambient OpenAI settings."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
