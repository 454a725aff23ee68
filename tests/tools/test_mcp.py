"""accord.mcp.tools against a real MCP server (tests/tools/mcp_server.py, written with the SDK),
over stdio and over streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import accord
from accord.errors import ConfigError
from accord.testing import ScriptedBackend, tool_call

pytest.importorskip("mcp")

SERVER = Path(__file__).resolve().parent / "mcp_server.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the MCP test server did not start within 30 s")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


async def _check(target: str) -> None:
    tools = await accord.mcp.tools(target)

    by_name = {t.name: t for t in tools}
    assert set(by_name) == {"add", "fail"}
    assert by_name["add"].parameters["required"] == ["a", "b"]
    backend = ScriptedBackend(
        {"a": [[tool_call("add", a=2, b=40), tool_call("fail", reason="x")], "42"]}
    )
    seen: list[accord.runtime.events.Event] = []
    agent = accord.Agent("a", tools=tools)

    result = await accord.Graph("g").add(agent).run("2+40", backend=backend, on_event=seen.append)

    assert result.output is not None and result.output.text == "42"
    results = {e.tool: e for e in seen if e.kind == "tool_result"}
    assert (results["add"].result, results["add"].error) == ("42", None)
    assert results["fail"].error == "exception"


@pytest.mark.usefixtures("no_proxy")
async def test_mcp_tools_over_streamable_http_run_in_the_tool_loop(http_url: str) -> None:
    await _check(http_url)


async def test_mcp_tools_over_stdio_run_in_the_tool_loop() -> None:
    await _check(f"stdio:{sys.executable} {SERVER} stdio")


async def test_mcp_tools_refuse_an_unknown_target() -> None:
    with pytest.raises(ConfigError, match="stdio:COMMAND"):
        await accord.mcp.tools("ftp://x")
