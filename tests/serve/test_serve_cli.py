"""``accord serve``: the command, its refusal to run unauthenticated off loopback, SIGTERM, and the
trace page of a served run in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from _server import Recorder, chain, free_port, serving

import accord.serve
from accord.serve.cli import is_loopback
from accord.store import open_store

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser")) if p), None)

GRAPH_FILE = """
import asyncio
import accord
from accord.testing import FunctionBackend

async def model(request):
    await asyncio.sleep(DELAY)
    return f"{request.agent} done"

backend = FunctionBackend(model)
graph = accord.Graph("slow")
graph.add(accord.Agent("a", backend=backend), accord.Agent("b", backend=backend))
graph.connect("a", "b")
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACCORD_STORE": str(tmp_path / "runs.db")}
    env.pop("ACCORD_SERVE_API_KEY", None)
    return env


def _serve(
    tmp_path: Path, delay: float, *args: str, key: str | None = None
) -> tuple[subprocess.Popen[str], str, Path]:
    source = tmp_path / "graphs.py"
    source.write_text(GRAPH_FILE.replace("DELAY", str(delay)))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "accord.cli",
            "serve",
            f"{source}:graph",
            "--port",
            str(port),
            *args,
        ],
        env={**_env(tmp_path), **({"ACCORD_SERVE_API_KEY": key} if key else {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"accord serve did not start: {proc.communicate()[0]}")
        time.sleep(0.1)
    return proc, url, source


def test_serve_command_refuses_a_public_host_without_an_api_key(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "accord.cli",
            "serve",
            "debate",
            "--host",
            "0.0.0.0",
            "--model",
            "openai:x",
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "without an API key" in done.stderr and "--api-key" in done.stderr


def test_serve_loopback_hosts_are_recognised() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert (
        not is_loopback("0.0.0.0")
        and not is_loopback("10.0.0.7")
        and not is_loopback("example.com")
    )


def test_serve_command_serves_a_graph_file_and_finishes_running_work_on_sigterm(
    tmp_path: Path,
) -> None:
    proc, url, _ = _serve(tmp_path, 0.6, "--grace", "10", key="k-123")
    auth = {"Authorization": "Bearer k-123"}
    try:
        anonymous = httpx.get(url + "/v1/models")
        models = httpx.get(url + "/v1/models", headers=auth).json()
        started = httpx.post(url + "/v1/runs", json={"model": "slow", "task": "t"}, headers=auth)
        run_id = started.json()["id"]
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert anonymous.status_code == 401  # ACCORD_SERVE_API_KEY is the key
    assert [m["id"] for m in models["data"]] == ["slow"]
    assert proc.returncode in (0, -signal.SIGTERM), out  # uvicorn re-raises SIGTERM once done
    record = open_store(tmp_path / "runs.db").get_run(run_id)
    assert record.status == "completed"  # the run in flight finished within the grace period


def test_serve_command_cancels_work_past_the_grace_period_and_it_resumes(tmp_path: Path) -> None:
    proc, url, source = _serve(tmp_path, 1.0, "--grace", "0.3")
    try:
        run_id = httpx.post(url + "/v1/runs", json={"model": "slow", "task": "t"}).json()["id"]
        time.sleep(1.4)  # "a" has finished, "b" is in its model call
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode in (0, -signal.SIGTERM), out  # uvicorn re-raises SIGTERM once done
    db = tmp_path / "runs.db"
    assert open_store(db).get_run(run_id).status == "cancelled"
    assert [a.node for a in open_store(db).activations(run_id)] == ["a"]  # checkpointed
    resumed = subprocess.run(
        [sys.executable, "-m", "accord.cli", "runs", "resume", run_id, "--store", str(db)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert open_store(db).get_run(run_id).status == "completed"


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_serve_trace_page_of_a_served_run_renders_in_chromium(tmp_path: Path) -> None:
    assert CHROMIUM is not None
    rec = Recorder()
    with serving(accord.serve.app([chain()], backend=rec.backend, store=tmp_path / "r.db")) as url:
        reply = httpx.post(
            url + "/chat/completions",
            json={"model": "trio", "messages": [{"role": "user", "content": "x"}]},
        )
        run_id = reply.headers["x-accord-run-id"]
        flags = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=2000",
        ]
        dom = subprocess.run(
            [*flags, "--dump-dom", f"{url}/runs/{run_id}/trace"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HOME": str(tmp_path)},
        ).stdout
    assert 'data-rendered="true"' in dom, dom[-2000:]
    assert re.findall(r'class="lane" data-agent="([^"]+)"', dom) == ["a", "b", "c"]
    assert re.findall(r'class="message" data-id="([^"]+)"', dom) == [
        f"{run_id}/{n}/0" for n in "abc"
    ]
    assert dom.count('class="node ran"') == 3
