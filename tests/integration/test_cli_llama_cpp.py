"""``accord run`` against llama-cpp-python's real server: the task from stdin, the new flags.

Caveat: the served model has random weights, so the test asserts what the flags do, not content.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from llama_server import LlamaServer


def test_cli_run_debate_from_stdin_against_llama_cpp(llama_server: LlamaServer) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
        "ACCORD_DURABILITY": "off",
        "OPENAI_API_KEY": llama_server.api_key,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "accord.cli",
            "run",
            "debate",
            "-",
            "--model",
            f"openai:{llama_server.model}",
            "--base-url",
            llama_server.base_url,
            "--agents",
            "2",
            "--rounds",
            "1",
            "--temperature",
            "0",
            "--max-tokens",
            "8",
            "--timeout",
            "120",
            "--concurrency",
            "1",
            "--json",
        ],
        input="What is 17 * 24?\n",
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    # The random-weight model never ends a reply by itself, so --max-tokens 8 reaching the server
    # shows as finish_reason "length": a run error (exit 1), reported as one JSON object.
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "failed" and data["error"] == "TruncatedOutputError"
