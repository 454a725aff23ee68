"""Tool: schema from signature and docstring, validation, serialisation; wire formats."""

from __future__ import annotations

import json

import pytest

from accord.backends._tool_calls import (
    native_params,
    parse_native_calls,
    parse_tagged_calls,
    prompted_messages,
)
from accord.backends.base import ChatMessage, Request, ToolCall, ToolSpec
from accord.errors import ConfigError
from accord.tools import Tool, serialise


def search(query: str, limit: int = 5, exact: bool = False) -> list[str]:
    """Search the notes.

    Longer text that is not the summary.

    Args:
        query (str): what to look for.
        limit: how many results
            at most.
        exact: match the whole phrase.

    Returns:
        The matching notes.
    """
    return [query] * limit


def test_tool_schema_comes_from_signature_and_google_docstring() -> None:
    tool = Tool(search)

    assert tool.description == "Search the notes. Longer text that is not the summary."
    props = tool.parameters["properties"]
    assert props["query"] == {"type": "string", "description": "what to look for."}
    assert props["limit"]["description"] == "how many results at most."
    assert props["limit"]["default"] == 5
    assert tool.parameters["required"] == ["query"]


async def test_tool_validates_like_validate_call_and_reports_problems() -> None:
    tool = Tool(search)

    ok = await tool.invoke('{"query": "x", "limit": "2"}')
    bad = await tool.invoke('{"limit": "many", "extra": 1}')

    assert json.loads(ok.content) == ["x", "x"]
    assert bad.error == "invalid_arguments"
    assert "query: Field required" in bad.content and "limit:" in bad.content
    assert "extra" in bad.content


def test_tool_refuses_var_args_and_bad_names() -> None:
    def loose(*args: int) -> int:
        return 0

    with pytest.raises(ConfigError, match=r"\*args"):
        Tool(loose)
    with pytest.raises(ConfigError, match="not usable"):
        Tool(search, name="has space")


def test_serialise_turns_values_into_text_for_the_model() -> None:
    assert serialise("plain") == "plain"
    assert serialise({"a": [1, 2]}) == '{"a":[1,2]}'
    assert serialise(None) == "null"
    assert serialise(object()).startswith("<object")
    assert serialise("x" * 50, limit=10).startswith("xxxxxxxxxx\n[... cut")


def test_parse_tagged_calls_reads_hermes_style_blocks() -> None:
    text = (
        'Let me look.\n<tool_call>\n{"name": "search", "arguments": {"query": "q"}}\n</tool_call>'
    )

    rest, calls = parse_tagged_calls(text)

    assert rest == "Let me look."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("search", {"query": "q"})]
    assert parse_tagged_calls("<tool_call>not json</tool_call>")[1] == ()


def test_native_params_and_calls_follow_the_openai_protocol() -> None:
    call = ToolCall(id="c1", name="search", arguments='{"query": "q"}')
    request = Request(
        messages=(
            ChatMessage(role="user", content="find q"),
            ChatMessage(role="assistant", content="", tool_calls=(call,)),
            ChatMessage(role="tool", content="[]", tool_call_id="c1", name="search"),
        ),
        tools=(ToolSpec(name="search", parameters={"type": "object"}),),
        tool_choice="search",
    )

    params = native_params(request)

    assert params["tool_choice"] == {"type": "function", "function": {"name": "search"}}
    assert params["tools"][0]["function"]["name"] == "search"
    assert params["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"query": "q"}'
    assert params["messages"][2] == {"role": "tool", "tool_call_id": "c1", "content": "[]"}
    raw = [{"id": "x", "type": "function", "function": {"name": "s", "arguments": {"a": 1}}}]
    assert parse_native_calls(raw) == (ToolCall(id="x", name="s", arguments='{"a": 1}'),)
    prompted = prompted_messages(request)
    assert "<tools>" in prompted[0]["content"]
    assert prompted[2]["content"].startswith("<tool_call>")
    assert prompted[3] == {"role": "user", "content": "<tool_response>\n[]\n</tool_response>"}
