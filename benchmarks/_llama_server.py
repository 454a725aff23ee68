"""Start llama-cpp-python's OpenAI-compatible server on 127.0.0.1 with the real model that
``../shared/tools/real-model.sh`` assembles (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF), for the
benchmarks that need a real model (``real_model.py``, ``humaneval.py``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALIAS = "qwen2.5-coder-0.5b-instruct"
MODEL_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


def find_model(given: str | None) -> Path:
    """The GGUF: ``--model``, the cache, or what ``real-model.sh`` prints (it downloads once)."""
    if given:
        return Path(given)
    cached = Path.home() / ".cache" / "accord" / "models" / MODEL_FILE
    if cached.is_file():
        return cached
    for up in (ROOT.parent, ROOT.parent.parent):
        script = up / "shared" / "tools" / "real-model.sh"
        if script.is_file():
            out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True)
            return Path(out.stdout.strip().splitlines()[-1])
    raise SystemExit(f"no model: pass --model PATH/{MODEL_FILE} or run shared/tools/real-model.sh")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def posts(self) -> int:
        """Chat requests the server received (one access-log line each)."""
        return self.log.read_text(errors="replace").count('"POST /v1/chat/completions HTTP')


def start_server(model: Path, port: int, threads: int, log: Path) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
        "--n_threads", str(threads), "--n_threads_batch", str(threads),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}/v1", process, log)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 180
    while True:
        try:
            with opener.open(f"{server.base_url}/models", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise SystemExit("server did not start:\n" + log.read_text(errors="replace")[-3000:])
        time.sleep(0.5)
