"""Start llama-cpp-python's OpenAI-compatible server on 127.0.0.1 for integration tests.

:func:`start_llama_server` writes a tiny GGUF model (``gguf_model``), runs
``python -m llama_cpp.server`` on a free port with one thread and an API key, polls
``GET /v1/models`` until it answers, and returns a handle whose ``stop()`` ends that process by
its id. :func:`missing_reason` says why the server cannot run here (None when it can).

Caveat: the model has random weights; tests must assert on structure, not on content.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LlamaServer", "start_llama_server", "missing_reason", "LLAMA_KEY", "LLAMA_MODEL"]

LLAMA_KEY = "sk-test-llama-local-key"
LLAMA_MODEL = "tiny-llama"
_NEEDED = ("llama_cpp", "sse_starlette", "starlette_context", "gguf", "sentencepiece", "numpy")


@dataclass
class LlamaServer:
    """A running server: its ``/v1`` URL, key, model alias, log file and process."""

    base_url: str
    api_key: str
    model: str
    log: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def missing_reason() -> str | None:
    """Why the llama.cpp server cannot run here, or None."""
    missing = [m for m in _NEEDED if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (
        "llama-cpp-python[server] and the GGUF writer's packages are needed (missing: "
        + ", ".join(missing)
        + "): without them there is no real OpenAI-compatible server to test against. Install with "
        "CMAKE_ARGS='-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF' pip install 'llama-cpp-python[server]' "
        "(it builds llama.cpp from source; .ci/run does this)."
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _ready(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {LLAMA_KEY}"})
    try:
        with opener.open(request, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_llama_server(folder: Path, *, startup_timeout: float = 60.0) -> LlamaServer:
    """Write the tiny model into ``folder`` and serve it; raises RuntimeError with the log tail."""
    from gguf_model import write_tiny_gguf

    model = write_tiny_gguf(folder)
    port = _free_port()
    log = folder / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--model_alias", LLAMA_MODEL,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1",
        "--api_key", LLAMA_KEY,
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", LLAMA_KEY, LLAMA_MODEL, log, process)
    deadline = time.monotonic() + startup_timeout
    while not _ready(f"{server.base_url}/models"):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            tail = log.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError("llama-cpp-python server did not start:\n" + "\n".join(tail))
        time.sleep(0.1)
    return server
