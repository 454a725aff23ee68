"""Logging: quiet unless the application opts in; readable through structlog or ``logging``."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

import accord
from accord.testing import ScriptedBackend

RUN_A_GRAPH = textwrap.dedent(
    """
    import accord
    from accord._log import get_logger
    from accord.runtime import report_retry
    from accord.testing import FunctionBackend

    def model(request):
        report_retry(attempt=1, delay_s=0.0, error="503", status_code=503)
        return '{"approved": true}' if request.agent == "critic" else "draft"

    g = accord.Graph("quiet").add(accord.Solver("solver"), accord.Critic("critic"))
    g.connect("solver", "critic")
    g.connect("critic", "solver", when=lambda m: not m.payload.approved, max_rounds=2)
    g.set_entry("solver").set_exit("solver")
    result = g.run_sync("t", FunctionBackend(model))
    assert result.status == "completed", result.status
    """
)
NOTHING_LISTENS = 'assert not get_logger("accord.runtime._scheduler").debug_enabled()\n'


@pytest.fixture
def structlog_reset() -> Iterator[None]:
    """capture_logs() leaves structlog marked as configured; undo that for later tests."""
    yield
    structlog.reset_defaults()


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def _graph() -> accord.Graph:
    return accord.Graph("logged").add(accord.Agent("a"), accord.Agent("b")).connect("a", "b")


@pytest.mark.parametrize(
    "prelude", ["", "import structlog\n"], ids=["no-structlog", "structlog-unconfigured"]
)
def test_library_is_quiet_by_default(prelude: str) -> None:
    done = _run_python(prelude + RUN_A_GRAPH + NOTHING_LISTENS)

    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ""


def test_library_logs_through_structlog_when_the_application_configures_it() -> None:
    code = (
        "import structlog\n"
        "structlog.configure(processors=[structlog.processors.KeyValueRenderer("
        "key_order=['event'])])\n" + RUN_A_GRAPH
    )

    done = _run_python(code)

    assert done.returncode == 0, done.stderr
    assert "event='run_started'" in done.stdout
    assert "event='activation_finished'" in done.stdout
    assert "event='retry_scheduled'" in done.stdout


@pytest.mark.usefixtures("structlog_reset")
async def test_logs_are_readable_with_structlog_capture_logs() -> None:
    backend = ScriptedBackend({"a": ["x"], "b": ["y"]})

    with capture_logs() as logs:
        await _graph().run("t", backend=backend, run_id="r1")

    assert [e["event"] for e in logs] == [
        "run_started",
        "activation_finished",
        "activation_finished",
        "run_finished",
    ]
    assert logs[0] == {
        "event": "run_started",
        "log_level": "debug",
        "run_id": "r1",
        "graph": "logged",
    }
    assert [(e["node"], e["round"], e["run_id"]) for e in logs[1:3]] == [
        ("a", 0, "r1"),
        ("b", 0, "r1"),
    ]
    assert logs[3]["status"] == "completed"


async def test_logs_reach_the_standard_logging_module_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="accord")

    await _graph().run("t", backend=ScriptedBackend({"a": ["x"], "b": ["y"]}), run_id="r2")

    records = [r for r in caplog.records if r.name.startswith("accord")]
    events = [r.accord_event for r in records]  # type: ignore[attr-defined]
    assert events == ["run_started", "activation_finished", "activation_finished", "run_finished"]
    assert records[1].accord_fields["node"] == "a"  # type: ignore[attr-defined]
    assert records[1].levelno == logging.DEBUG
    assert "activation_finished" in records[1].getMessage()
    assert "run_id='r2'" in records[1].getMessage()


async def test_logs_stay_off_at_the_default_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="accord")

    await _graph().run("t", backend=ScriptedBackend({"a": ["x"], "b": ["y"]}))

    assert [r for r in caplog.records if r.name.startswith("accord")] == []
