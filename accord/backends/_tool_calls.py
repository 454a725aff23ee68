"""Tool calls on the wire: OpenAI's native protocol, and a prompted fallback.

- Native (``tools=`` / ``tool_calls``): :func:`native_params` turns a request's tools, tool
  choice and tool turns into chat-completions parameters; :func:`parse_native_calls` reads a
  reply message's ``tool_calls``.
- Prompted (servers and local models without native tool calling): the tools are described in
  the system prompt and the model writes each call as ``<tool_call>{"name": ..., "arguments":
  {...}}</tool_call>`` (the Hermes / Qwen2.5 format); earlier calls and results are shown in
  that format too. :func:`parse_tagged_calls` reads such calls from text. A forced tool (a tool
  name as ``tool_choice``) is requested as a JSON schema for ``{"name", "arguments"}``, so a
  server with grammar-constrained JSON output always produces a valid call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from accord.backends.base import ChatMessage, Choice, Request, ToolCall, ToolSpec

__all__ = [
    "native_params",
    "native_messages",
    "parse_native_calls",
    "prompted_messages",
    "forced_call_schema",
    "parse_tagged_calls",
    "prompted_choice",
    "tools_prompt",
    "apply_tools",
]

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def _spec_json(spec: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": spec.parameters,
        },
    }


def native_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Chat messages in the OpenAI format, tool turns included."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content})
        elif m.tool_calls:
            # A string, never null: some servers (llama-cpp-python) refuse null content.
            turn: dict[str, Any] = {"role": m.role, "content": m.content}
            out.append(
                {
                    **turn,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        }
                        for c in m.tool_calls
                    ],
                }
            )
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def native_params(request: Request) -> dict[str, Any]:
    """``messages``, ``tools`` and ``tool_choice`` for a request with tools (native protocol)."""
    params: dict[str, Any] = {"messages": native_messages(request.messages)}
    if request.tools:
        params["tools"] = [_spec_json(s) for s in request.tools]
        choice = request.tool_choice
        if choice in ("auto", "required", "none"):
            params["tool_choice"] = choice
        elif choice is not None:
            params["tool_choice"] = {"type": "function", "function": {"name": choice}}
    return params


def parse_native_calls(raw: Any) -> tuple[ToolCall, ...]:
    """A reply message's ``tool_calls`` (malformed entries are skipped)."""
    if not isinstance(raw, list):
        return ()
    calls: list[ToolCall] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            continue
        fn = item.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue
        arguments = fn.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        call_id = item.get("id")
        calls.append(
            ToolCall(
                id=call_id if isinstance(call_id, str) and call_id else f"call_{i}",
                name=fn["name"],
                arguments=arguments,
            )
        )
    return tuple(calls)


def tools_prompt(tools: Sequence[ToolSpec]) -> str:
    """The system-prompt section that describes tools and the ``<tool_call>`` format."""
    listed = "\n".join(json.dumps(_spec_json(s)["function"], separators=(",", ":")) for s in tools)
    return (
        "You can call these tools (JSON schemas of their arguments):\n"
        f"<tools>\n{listed}\n</tools>\n"
        "To call a tool, reply with only one line per call, in this form:\n"
        '<tool_call>{"name": "TOOL_NAME", "arguments": {...}}</tool_call>\n'
        "You will get each result in a <tool_response> block. When you need no tool, answer "
        "normally, without <tool_call>."
    )


def _call_text(call: ToolCall) -> str:
    try:
        arguments: Any = json.loads(call.arguments)
    except ValueError:
        arguments = call.arguments
    return "<tool_call>" + json.dumps({"name": call.name, "arguments": arguments}) + "</tool_call>"


def prompted_messages(request: Request) -> list[dict[str, str]]:
    """Chat messages for a server without tool calling: tools described in the system prompt,
    calls and results written as ``<tool_call>`` / ``<tool_response>`` text."""
    out: list[dict[str, str]] = []
    for m in request.messages:
        if m.role == "tool":
            text = f"<tool_response>\n{m.content}\n</tool_response>"
            if out and out[-1]["role"] == "user" and out[-1]["content"].startswith("<tool_resp"):
                out[-1]["content"] += "\n" + text
            else:
                out.append({"role": "user", "content": text})
        elif m.tool_calls:
            calls = "\n".join(_call_text(c) for c in m.tool_calls)
            out.append({"role": "assistant", "content": f"{m.content}\n{calls}".strip()})
        else:
            out.append({"role": m.role, "content": m.content})
    if request.tools and request.tool_choice != "none":
        note = tools_prompt(request.tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{note}".strip()}
        else:
            out.insert(0, {"role": "system", "content": note})
    return out


def forced_call_schema(request: Request) -> dict[str, Any] | None:
    """For a forced tool (its name as ``tool_choice``): the JSON schema of one call to it."""
    choice = request.tool_choice
    spec = next((s for s in request.tools if s.name == choice), None)
    if spec is None:
        return None
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": [spec.name]},
            "arguments": spec.parameters,
        },
        "required": ["name", "arguments"],
    }


def _call_from(data: Any, index: int) -> ToolCall | None:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(id=f"call_{index}", name=data["name"], arguments=text)


def parse_tagged_calls(text: str) -> tuple[str, tuple[ToolCall, ...]]:
    """``<tool_call>{json}</tool_call>`` blocks in ``text``: the text without them, and the
    calls (a block that is not a JSON call is left in the text)."""
    calls: list[ToolCall] = []
    kept: list[str] = []
    last = 0
    for match in _TAGGED.finditer(text):
        try:
            call = _call_from(json.loads(match.group(1)), len(calls))
        except ValueError:
            call = None
        if call is None:
            continue
        kept.append(text[last : match.start()])
        last = match.end()
        calls.append(call)
    kept.append(text[last:])
    return "".join(kept).strip() if calls else text, tuple(calls)


def prompted_choice(choice: Choice, request: Request) -> Choice:
    """A reply of the prompted protocol with its calls read (a forced call's reply is one
    ``{"name", "arguments"}`` JSON object)."""
    if not request.tools or request.tool_choice == "none":
        return choice
    if forced_call_schema(request) is not None:
        try:
            call = _call_from(json.loads(choice.text), 0)
        except ValueError:
            call = None
        if call is not None:
            return choice.model_copy(
                update={"text": "", "tool_calls": (call,), "finish_reason": "tool_calls"}
            )
    text, calls = parse_tagged_calls(choice.text)
    if not calls:
        return choice
    return choice.model_copy(
        update={"text": text, "tool_calls": calls, "finish_reason": "tool_calls"}
    )


def _has_tool_turns(request: Request) -> bool:
    return any(m.role == "tool" or m.tool_calls for m in request.messages)


def apply_tools(
    params: dict[str, Any],
    request: Request,
    mode: str,
    note: str | None,
    json_schema_format: bool = True,
) -> dict[str, Any]:
    """``params`` (from ``build_params``) with the request's tools and tool turns, in ``mode``
    ``"native"`` or ``"prompt"``; ``note`` is the schema instruction to keep in the system
    prompt (prompted mode rebuilds the messages). A forced call in prompted mode is asked for as
    ``response_format`` ``json_schema`` when ``json_schema_format``, else as ``json_object``
    with a ``schema`` key (llama-cpp-python's server constrains its output to it)."""
    if not request.tools and not _has_tool_turns(request):
        return params
    if mode == "native":
        return {**params, **native_params(request)}
    messages = prompted_messages(request)
    if note:
        if messages and messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{note}"}
        else:
            messages.insert(0, {"role": "system", "content": note})
    out = {**params, "messages": messages}
    forced = forced_call_schema(request)
    if forced is not None:
        out["response_format"] = (
            {"type": "json_schema", "json_schema": {"name": "tool_call", "schema": forced}}
            if json_schema_format
            else {"type": "json_object", "schema": forced}
        )
    return out
