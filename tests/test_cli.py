"""The ``accord`` command, run as a subprocess: exit codes, --json, --quiet, graph files, drawing,
Ctrl-C, and a debate against an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "backends"))
from fault_server import FaultServer, Reply, completion  # noqa: E402

GRAPHS = textwrap.dedent(
    """
    import asyncio
    import accord
    from accord.testing import FunctionBackend

    async def slow(request):
        await asyncio.sleep(30)
        return "late"

    fast = FunctionBackend(lambda r: f"{r.agent} done")
    graph = accord.Graph("demo")
    graph.add(accord.Agent("a", fast), accord.Agent("b", fast))
    graph.connect("a", "b")

    invalid = accord.Graph("invalid")
    invalid.add(accord.Agent("a", fast), accord.Agent("b", fast))
    invalid.connect("a", "ghost")

    sleepy = accord.Graph("sleepy")
    sleepy.add(accord.Agent("z", FunctionBackend(slow)))

    def make():
        return graph
    """
)


def accord_cmd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACCORD_DURABILITY": "off"}
    return subprocess.run(
        [sys.executable, "-m", "accord.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture
def graphs(tmp_path: Path) -> Path:
    path = tmp_path / "graphs.py"
    path.write_text(GRAPHS)
    return path


def test_cli_run_graph_file_prints_answer_and_exits_0(graphs: Path) -> None:
    done = accord_cmd("run", f"{graphs}:graph", "hello", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "b done"


def test_cli_run_json_is_one_machine_readable_result(graphs: Path) -> None:
    done = accord_cmd("run", f"{graphs}:make", "hello", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "completed" and data["answer"] == "b done"
    assert [m["sender"] for m in data["transcript"]] == ["a", "b"]
    assert data["usage"]["requests"] == 2 and set(data["usage_by_agent"]) == {"a", "b"}


def test_cli_run_summary_shows_answer_and_usage_table(graphs: Path) -> None:
    done = accord_cmd("run", f"{graphs}:graph", "hello")
    assert done.returncode == 0
    assert "b done" in done.stdout and "usage" in done.stdout and "total" in done.stdout


def test_cli_invalid_graph_exits_2_with_the_fix(graphs: Path) -> None:
    done = accord_cmd("run", f"{graphs}:invalid", "x")
    assert done.returncode == 2
    assert "ghost" in done.stderr and "graph.add" in done.stderr


def test_cli_missing_file_exits_2(tmp_path: Path) -> None:
    done = accord_cmd("run", f"{tmp_path}/nope.py:graph", "x")
    assert done.returncode == 2 and "no such file" in done.stderr


def test_cli_missing_name_in_file_lists_the_graphs(graphs: Path) -> None:
    done = accord_cmd("run", f"{graphs}:nothing", "x")
    assert done.returncode == 2 and "graph" in done.stderr and "invalid" in done.stderr


def test_cli_unknown_pattern_suggests_the_closest(graphs: Path) -> None:
    done = accord_cmd("run", "debatte", "x")
    assert done.returncode == 2 and "Did you mean 'debate'" in done.stderr


def test_cli_unknown_model_prefix_exits_2() -> None:
    done = accord_cmd("run", "debate", "x", "--model", "opneai:gpt-4o-mini")
    assert done.returncode == 2 and "Did you mean 'openai:gpt-4o-mini'" in done.stderr


def test_cli_bad_option_exits_2() -> None:
    done = accord_cmd("run", "debate", "x", "--rounds", "many")
    assert done.returncode == 2


def test_cli_graph_mermaid_draws_the_pattern() -> None:
    done = accord_cmd("graph", "debate", "--mermaid")
    assert done.returncode == 0
    assert done.stdout.startswith("flowchart TD")
    assert "debater_1 --> moderator" in done.stdout and "moderator -.->|when| vote" in done.stdout


def test_cli_graph_dot_draws_a_graph_file(graphs: Path) -> None:
    done = accord_cmd("graph", f"{graphs}:graph", "--dot")
    assert (
        done.returncode == 0
        and done.stdout.startswith('digraph "demo"')
        and '"a" -> "b"' in done.stdout
    )


def test_cli_ctrl_c_cancels_the_run_cleanly(graphs: Path) -> None:
    env = {**os.environ, "ACCORD_DURABILITY": "off"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "accord.cli", "run", f"{graphs}:sleepy", "x", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(2.0)  # let it start the model call
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "cancelled" in err and "Traceback" not in err


async def test_cli_debate_against_an_openai_compatible_server() -> None:
    async with FaultServer(
        default=Reply.json(completion("I think 2+3 makes five.\nAnswer: 5"))
    ) as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "accord.cli",
            "run",
            "debate",
            "What is 2+3?",
            "--model",
            "openai:tiny",
            "--base-url",
            server.base_url,
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={
                **os.environ,
                "ACCORD_DURABILITY": "off",
                "OPENAI_API_KEY": "sk-test",
                "NO_PROXY": "127.0.0.1",
            },
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    data = json.loads(out)
    assert data["answer"] == "5"
    assert len(server.requests) == 3  # three debaters agree at once: no second round


def test_cli_graph_png_writes_an_image(graphs: Path, tmp_path: Path) -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (.ci/run installs it with apt-get)")
    out = tmp_path / "g.png"
    done = accord_cmd("graph", f"{graphs}:graph", "--png", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
