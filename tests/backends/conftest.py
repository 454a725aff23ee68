"""Fixtures for the OpenAI-compatible backend tests: proxy-free env, fake time, the fault server.

Only tests that ask for these fixtures get them (nothing here is autouse), so other backend tests
in this folder are unaffected.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import fault_server` from any layout

from fault_server import FakeTime, FaultServer  # noqa: E402


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback requests must never go through a proxy; no ambient OpenAI settings either."""
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def server(no_proxy_env: None, fake_time: FakeTime) -> AsyncIterator[FaultServer]:
    """A fault server on 127.0.0.1 that records the fake clock with each request."""
    async with FaultServer(clock=fake_time.clock) as srv:
        yield srv
