"""Tools with a local HF model: a tiny random Llama whose ChatML template has a tools section
(Qwen2.5/Hermes style). A random model cannot choose a tool, so the tool is forced: the call is
opened in the prompt and the model writes its arguments (random, so usually invalid: the loop
then tells the model, which is part of what is checked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import accord
from accord.backends.base import ChatMessage, Request, ToolCall, ToolSpec

pytest.importorskip("transformers")

TOOLS_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "# Tools\n\nYou are provided with function signatures within <tools></tools> XML tags:\n"
    "<tools>{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags.<|im_end|>\n"
    "{%- elif messages[0].role == 'system' %}<|im_start|>system\n"
    "{{ messages[0].content }}<|im_end|>\n{% endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'system' %}"
    "{%- elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n"
    "{{ message.content }}\n</tool_response><|im_end|>\n"
    "{%- elif message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant\n"
    "{{ message.content }}{% for call in message.tool_calls %}<tool_call>\n"
    '{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}'
    "\n</tool_call>{% endfor %}<|im_end|>\n"
    "{%- else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_tools_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from accord._tiny import byte_tokenizer, save_tiny_llama

    folder = tmp_path_factory.mktemp("tiny-tools")
    return save_tiny_llama(folder, byte_tokenizer(chat_template=TOOLS_TEMPLATE), seed=0)


def ping(note: str = "") -> str:
    """Check that the service is up.

    Args:
        note: anything.
    """
    return "pong"


def test_hf_prompt_renders_tools_and_tool_turns_through_the_chat_template(
    tiny_tools_model: Path,
) -> None:
    from accord.backends.hf import HFBackend

    backend = HFBackend(str(tiny_tools_model))
    spec = ToolSpec(name="ping", description="Check.", parameters={"type": "object"})
    request = Request(
        messages=(
            ChatMessage(role="user", content="is it up?"),
            ChatMessage(
                role="assistant",
                content="",
                tool_calls=(ToolCall(id="c1", name="ping", arguments='{"note": "x"}'),),
            ),
            ChatMessage(role="tool", content="pong", tool_call_id="c1", name="ping"),
        ),
        tools=(spec,),
    )

    from accord.backends._hf_tools import request_prompt

    text = request_prompt(backend._ensure_loaded(), request, "tiny")

    assert '"name": "ping"' in text and "<tools>" in text
    assert '<tool_call>\n{"name": "ping", "arguments": {"note": "x"}}' in text
    assert "<tool_response>\npong\n</tool_response>" in text
    assert text.endswith("<|im_start|>assistant\n")


async def test_hf_backend_forced_tool_call_runs_through_the_tool_loop(
    tiny_tools_model: Path,
) -> None:
    from accord.backends.hf import HFBackend

    backend = HFBackend(str(tiny_tools_model), max_new_tokens=24)
    agent = accord.Agent(
        "a", backend, tools=[ping], tool_choice="ping", max_tool_calls=1, seed=0, temperature=0.0
    )
    seen: list[Any] = []

    result = await accord.Graph("g").add(agent).run("ping it", on_event=seen.append)

    calls = [e for e in seen if e.kind == "tool_call"]
    results = [e for e in seen if e.kind == "tool_result"]
    assert [e.tool for e in calls] == ["ping"]
    assert len(results) == 1 and results[0].error in (None, "invalid_arguments")
    assert result.usage.requests == 2
    assert result.output is not None
