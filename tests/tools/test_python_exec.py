"""python_exec: output, limits, environment, working directory, network isolation."""

from __future__ import annotations

import asyncio
import os

import pytest

import accord
from accord.errors import ConfigError
from accord.testing import ScriptedBackend, tool_call
from accord.tools import python_exec, python_tool
from accord.tools._exec import network_isolation_available


async def test_python_exec_returns_stdout_stderr_and_exit_status() -> None:
    result = await python_exec("import sys\nprint(input() * 2)\nsys.exit(3)", stdin="ab\n")

    assert (result.stdout, result.exit_code, result.timed_out) == ("abab\n", 3, False)


async def test_python_exec_kills_a_program_past_its_timeout() -> None:
    result = await python_exec("while True: pass", timeout=0.5)

    assert result.timed_out and not result.ok
    assert result.duration_s < 5


async def test_python_exec_enforces_the_memory_limit() -> None:
    result = await python_exec("x = bytearray(800 * 1024 * 1024)", memory_mb=256)

    assert result.exit_code != 0 and "MemoryError" in result.stderr


async def test_python_exec_cuts_long_output_and_says_so() -> None:
    result = await python_exec("print('x' * 100_000)", max_output_chars=1000)

    assert result.truncated and len(result.stdout) < 1100


async def test_python_exec_inherits_no_secrets_and_runs_in_a_temporary_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    code = "import os\nprint(sorted(os.environ))\nprint(os.getcwd())\nopen('f.txt', 'w').write('x')"

    result = await python_exec(code, files={"data/in.txt": "hi"})

    names, cwd = result.stdout.splitlines()
    assert "OPENAI_API_KEY" not in names and "sk-secret" not in result.stdout
    assert cwd != os.getcwd() and "accord-exec-" in cwd
    assert not await asyncio.to_thread(os.path.exists, cwd)  # removed afterwards


async def test_python_exec_has_no_network_where_namespaces_are_available() -> None:
    if not network_isolation_available():
        pytest.skip("unprivileged network namespaces (unshare -rn) are not available here")
    code = (
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
        "except OSError as e:\n    print(type(e).__name__, e.errno)\n"
    )

    result = await python_exec(code)

    assert result.network_isolated
    assert "101" in result.stdout or "Unreachable" in result.stdout  # ENETUNREACH: no loopback up


async def test_python_exec_refuses_a_file_outside_its_folder() -> None:
    with pytest.raises(ConfigError, match="leaves the working directory"):
        await python_exec("pass", files={"../x.py": ""})


@pytest.mark.usefixtures("no_real_backends")
async def test_python_tool_runs_model_code_in_the_tool_loop() -> None:
    backend = ScriptedBackend({"a": [tool_call("run_python", code="print(6 * 7)"), "42"]})
    agent = accord.Agent("a", tools=[python_tool(timeout=5)])

    await accord.Graph("g").add(agent).run("x", backend=backend)

    (result,) = [m.content for m in backend.requests[1].messages if m.role == "tool"]
    assert '"stdout":"42\\n"' in result and '"exit_code":0' in result
