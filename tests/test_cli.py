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
        from pathlib import Path

        Path(__file__).with_suffix(".started").write_text("1")  # the test waits for this
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

    echo = accord.Graph("echo")
    echo.add(accord.Agent("e", FunctionBackend(lambda r: "task=" + r.messages[-1].content)))

    hostile_text = "\x1b]0;pwned\x07\x1b[2Jtext [bold]x[/bold] :m: [/bold]\x1b[31m"
    hostile = accord.Graph("hostile")
    hostile.add(accord.Agent("h", FunctionBackend(lambda r: hostile_text)))

    def fails(request):
        raise accord.errors.EnsembleError("server said [/bold] for openai:m: \x1b[31mred")

    broken = accord.Graph("broken")
    broken.add(accord.Agent("x", FunctionBackend(fails)))

    def seen(request):
        return (
            f"temperature={request.temperature} max_tokens={request.max_tokens} "
            f"top_p={request.top_p}"
        )

    sampling = accord.Graph("sampling")
    sampling.add(accord.Agent("s", FunctionBackend(seen)))
    """
)


def accord_cmd(
    *args: str, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACCORD_DURABILITY": "off"}
    return subprocess.run(
        [sys.executable, "-m", "accord.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        input=stdin if stdin is not None else "",
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
    started = graphs.with_suffix(".started")
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)  # wait until the model call has started (slow under load)
    assert started.exists(), proc.communicate()[1]
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


def test_cli_version_prints_the_version() -> None:
    import accord

    done = accord_cmd("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"accord {accord.__version__}"


def test_cli_run_reads_the_task_from_stdin_and_from_a_file(graphs: Path, tmp_path: Path) -> None:
    done = accord_cmd("run", f"{graphs}:echo", "-", "--quiet", stdin="What is 2+3?\n")
    assert done.returncode == 0, done.stderr
    assert "What is 2+3?" in done.stdout
    task = tmp_path / "task.txt"
    task.write_text("Name a prime.\n")
    done = accord_cmd("run", f"{graphs}:echo", "--task-file", str(task), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "Name a prime." in done.stdout


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("x", "   "), "", "empty"),
        (("x", "-"), " \n", "standard input is empty"),
        (("x",), "", "no task given"),
        (("x", "hi", "--task-file", "/nonexistent/task.txt"), "", "not both"),
        (("x", "--task-file", "/nonexistent/task.txt"), "", "cannot read"),
    ],
)
def test_cli_run_without_a_usable_task_exits_2(
    graphs: Path, args: tuple[str, ...], stdin: str, message: str
) -> None:
    target, *rest = args
    done = accord_cmd("run", f"{graphs}:echo", *rest, stdin=stdin)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_cli_base_url_without_a_scheme_is_a_usage_error() -> None:
    done = accord_cmd("run", "debate", "x", "-m", "openai:m", "--base-url", "localhost:8095/v1")
    assert done.returncode == 2
    assert "http://localhost:8095/v1" in done.stderr


@pytest.mark.parametrize("rounds", ["0", "-1"])
def test_cli_rounds_below_one_is_refused(rounds: str) -> None:
    done = accord_cmd("run", "debate", "x", "--rounds", rounds)
    assert done.returncode == 2 and "--rounds must be 1 or more" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("critique", "x", "--agents", "3"), "critique does not use --agents"),
        (("self_consistency", "x", "--rounds", "2"), "self_consistency does not use --rounds"),
        (("debate", "x", "--agents", "1"), "--agents must be 2 or more"),
    ],
)
def test_cli_option_a_pattern_does_not_use_is_an_error(
    args: tuple[str, ...], message: str
) -> None:
    done = accord_cmd("run", *args)
    assert done.returncode == 2 and message in done.stderr


def test_cli_agents_option_on_a_graph_file_is_an_error(graphs: Path) -> None:
    done = accord_cmd("run", f"{graphs}:graph", "x", "--agents", "4")
    assert done.returncode == 2 and "--agents applies to the built-in patterns" in done.stderr


def test_cli_temperature_max_tokens_and_top_p_reach_the_agents(graphs: Path) -> None:
    done = accord_cmd(
        "run", f"{graphs}:sampling", "x", "--temperature", "0.2", "--max-tokens", "64", "-q"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "temperature=0.2 max_tokens=64 top_p=None"
    done = accord_cmd("run", f"{graphs}:sampling", "x", "--top-p", "0.5", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "temperature=None max_tokens=None top_p=0.5"
    done = accord_cmd("run", f"{graphs}:sampling", "x", "--temperature", "5")
    assert done.returncode == 2 and "--temperature" in done.stderr
    done = accord_cmd("run", f"{graphs}:sampling", "x", "--top-p", "0")
    assert done.returncode == 2 and "--top-p must be above 0 and at most 1" in done.stderr


def test_cli_backend_flags_are_refused_for_a_model_that_has_none() -> None:
    done = accord_cmd("run", "debate", "x", "-m", "hf:./nowhere", "--concurrency", "2")
    assert done.returncode == 2 and "--concurrency only applies to 'openai:'" in done.stderr


def test_cli_error_with_markup_and_escapes_is_printed_as_text(graphs: Path) -> None:
    done = accord_cmd("run", f"{graphs}:broken", "x")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "MarkupError" not in done.stderr
    assert "server said [/bold] for openai:m:" in " ".join(done.stderr.split())
    assert "\x1b" not in done.stderr


def test_cli_unknown_model_with_an_emoji_code_is_not_rendered_as_emoji() -> None:
    done = accord_cmd("run", "debate", "x", "--model", "opneai:m:")
    assert done.returncode == 2
    assert "'openai:m:'" in done.stderr and "\u24c2" not in done.stderr


@pytest.mark.parametrize("mode", [(), ("--quiet",)])
def test_cli_model_text_reaches_the_terminal_without_escapes_or_markup(
    graphs: Path, mode: tuple[str, ...]
) -> None:
    done = accord_cmd("run", f"{graphs}:hostile", "x", *mode)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "text [bold]x[/bold] :m: [/bold]" in done.stdout


async def test_cli_run_passes_sampling_and_backend_flags_to_the_server() -> None:
    async with FaultServer(
        default=Reply.json(completion("17 * 24 = 408.\nAnswer: 408"))
    ) as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "accord.cli",
            "run",
            "debate",
            "-",
            "--model",
            "openai:tiny",
            "--base-url",
            server.base_url,
            "--temperature",
            "0.3",
            "--max-tokens",
            "77",
            "--top-p",
            "0.9",
            "--timeout",
            "30",
            "--concurrency",
            "1",
            "--json",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={
                **os.environ,
                "ACCORD_DURABILITY": "off",
                "OPENAI_API_KEY": "sk-test",
                "NO_PROXY": "127.0.0.1",
            },
        )
        out, err = await asyncio.wait_for(proc.communicate(b"What is 17 * 24?\n"), 60)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["answer"] == "408"
    assert len(server.requests) == 3
    for request in server.requests:
        assert request.body["temperature"] == 0.3 and request.body["max_tokens"] == 77
        assert request.body["top_p"] == 0.9
        assert "What is 17 * 24?" in json.dumps(request.body["messages"])


def test_cli_live_view_shows_model_text_without_escapes_or_markup() -> None:
    import io

    from rich.console import Console

    import accord
    from accord._view import LiveView
    from accord.runtime import events as ev

    graph = accord.Graph("g")
    graph.add(accord.Agent("a[bold]"))
    out = io.StringIO()
    view = LiveView(graph, Console(file=out, force_terminal=True, width=120, emoji=False))
    with view:
        for text in ("\x1b]0;pwned\x07hello [/bold] :m: ", "\x1b[2Jworld"):
            view.on_event(ev.TokenEvent(run_id="r", at=0.0, node="a[bold]", round=0, text=text))
        view._live.refresh()
    shown = out.getvalue()
    assert "pwned" not in shown and "\x1b[2J" not in shown and "\x07" not in shown
    assert "hello [/bold] :m: world" in shown and "a[bold]" in shown


@pytest.mark.parametrize(
    ("mode", "expected"), [("json_object", {"type": "json_object"}), ("instructions", None)]
)
async def test_cli_structured_mode_reaches_the_backend(mode: str, expected: object) -> None:
    reply = json.dumps({"answer": "5", "reasoning": "2+3"})
    async with FaultServer(default=Reply.json(completion(reply))) as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "accord.cli",
            "run",
            "judge_panel",
            "What is 2+3?",
            "--agents",
            "2",
            "--model",
            "openai:tiny",
            "--base-url",
            server.base_url,
            "--structured",
            mode,
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
    formats = [r.body.get("response_format") for r in server.requests]
    assert formats and all(
        (f is None if expected is None else f is not None and f["type"] == "json_object")
        for f in formats
    )


def test_cli_unknown_structured_mode_is_a_usage_error() -> None:
    done = accord_cmd(
        "run", "debate", "x", "-m", "openai:m", "--base-url", "http://127.0.0.1:9/v1",
        "--structured", "yaml",
    )
    assert done.returncode == 2 and "yaml" in done.stderr
