"""The tool loop against llama-cpp-python's real server (tiny random-weight GGUF model).

A random model cannot choose a tool, so each test forces one (``tool_choice=<tool name>``): the
server constrains the call's arguments to the tool's JSON schema with a grammar, natively
(``tools``/``tool_calls``) or, in the prompted fallback, through ``response_format`` with the
schema of a ``{"name", "arguments"}`` call. After the forced call the loop asks again with the
result (a tool turn the server must accept) and takes whatever the model answers.
"""

from __future__ import annotations

from typing import Any

import pytest
from llama_server import LlamaServer

import accord
from accord.backends.openai import OpenAIBackend, RetryPolicy

pytestmark = [pytest.mark.server, pytest.mark.usefixtures("loopback_env")]


@pytest.mark.parametrize(
    ("mode", "stream"), [("native", False), ("prompt", False), ("native", True)]
)
async def test_openai_backend_tool_loop_runs_a_forced_tool_on_llama_cpp(
    llama_server: LlamaServer, mode: str, stream: bool
) -> None:
    ran: list[bool] = []

    def lookup(flag: bool) -> str:
        """Look a flag up.

        Args:
            flag: the flag to look up.
        """
        ran.append(flag)
        return f"flag was {flag}"

    backend = OpenAIBackend(
        llama_server.model,
        base_url=llama_server.base_url,
        api_key=llama_server.api_key,
        retry=RetryPolicy(timeout=60, deadline=120),
        tool_calling=mode,  # type: ignore[arg-type]
        on_truncation="return",
    )
    agent = accord.Agent(
        "a",
        backend,
        tools=[lookup],
        tool_choice="lookup",
        max_tool_calls=1,
        max_tokens=48,
        temperature=0.0,
        seed=1,
    )
    seen: list[Any] = []

    result = (
        await accord.Graph("g")
        .add(agent)
        .run("use the tool", on_event=seen.append, stream_tokens=stream)
    )

    assert len(ran) == 1 and isinstance(ran[0], bool)
    results = [e for e in seen if e.kind == "tool_result"]
    assert [(e.tool, e.error) for e in results] == [("lookup", None)]
    assert result.output is not None and isinstance(result.output.text, str)
    # Prompted mode forces the call through response_format: in the default structured="auto"
    # mode llama-cpp-python refuses json_schema (500) once, and the backend falls back to
    # json_object+schema; the refused request reached the server, so it counts.
    assert result.usage.requests == (3 if mode == "prompt" else 2)
