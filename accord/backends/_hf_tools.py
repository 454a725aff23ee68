"""Tools for local models: prompts through the chat template's ``tools=``, calls read from text.

A tokenizer whose chat template uses ``tools`` (Qwen2.5, Hermes and others) renders the tools
itself, with earlier calls as assistant ``tool_calls`` and results as ``tool`` turns. Other
templates get the prompted format of :mod:`accord.backends._tool_calls` (tools described in the
system prompt, calls and results as ``<tool_call>`` / ``<tool_response>`` text). Either way the
model's ``<tool_call>{json}</tool_call>`` blocks are read as calls.

A forced tool (its name as ``tool_choice``) is started in the prompt: the assistant turn opens
with ``<tool_call>{"name": "NAME", "arguments": `` and the model writes the arguments. Local
generation is not grammar-constrained, so those arguments may be invalid JSON; the call is still
made and the agent's tool loop sends the model an "invalid arguments" result to correct.
"""

from __future__ import annotations

import json
from typing import Any

from accord.backends._hf_load import Loaded
from accord.backends._hf_prompt import chat_messages, render_prompt, schema_instructions
from accord.backends._tool_calls import (
    _has_tool_turns,
    parse_tagged_calls,
    prompted_choice,
    prompted_messages,
)
from accord.backends.base import Choice, Completion, Request, ToolCall
from accord.errors import ConfigError

__all__ = ["request_prompt", "read_tool_calls", "forced_prefix"]


def forced_prefix(name: str) -> str:
    """The start of a forced call, written into the prompt for the model to continue."""
    return '<tool_call>\n{"name": ' + json.dumps(name) + ', "arguments": '


def _forced(request: Request) -> str | None:
    choice = request.tool_choice
    if choice and any(s.name == choice for s in request.tools):
        return choice
    return None


def _template_turns(request: Request) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role == "tool":
            turns.append({"role": "tool", "content": m.content, "name": m.name or ""})
        elif m.tool_calls:
            calls = []
            for c in m.tool_calls:
                try:
                    arguments: Any = json.loads(c.arguments)
                except ValueError:
                    arguments = c.arguments
                calls.append(
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": arguments},
                    }
                )
            turns.append({"role": "assistant", "content": m.content, "tool_calls": calls})
        else:
            turns.append({"role": m.role, "content": m.content})
    if request.response_schema is not None:
        note = schema_instructions(request.response_schema, request.schema_name)
        if turns and turns[0]["role"] == "system":
            turns[0] = {"role": "system", "content": f"{turns[0]['content']}\n\n{note}"}
        else:
            turns.insert(0, {"role": "system", "content": note})
    return turns


def request_prompt(loaded: Loaded, request: Request, model: str) -> str:
    """The prompt text for ``request``, tools and tool turns included (see module docstring).

    Raises:
        ConfigError: the chat template rejects the messages.
    """
    if not request.tools and not _has_tool_turns(request):
        return render_prompt(loaded, chat_messages(request), model)
    template = str(getattr(loaded.tokenizer, "chat_template", None) or "")
    if loaded.has_chat_template and "tools" in template:
        specs = [
            {
                "type": "function",
                "function": {
                    "name": s.name,
                    "description": s.description,
                    "parameters": s.parameters,
                },
            }
            for s in request.tools
        ]
        try:
            text: str = loaded.tokenizer.apply_chat_template(
                _template_turns(request),
                tools=specs if request.tool_choice != "none" else None,
                tokenize=False,
                add_generation_prompt=True,
            )
        except Exception as exc:  # jinja2's own errors
            raise ConfigError(
                f"the chat template of model {model!r} rejected the tool messages: {exc}"
            ) from exc
    else:
        turns = prompted_messages(request)
        if request.response_schema is not None:
            note = schema_instructions(request.response_schema, request.schema_name)
            if turns[0]["role"] == "system":
                turns[0] = {"role": "system", "content": f"{turns[0]['content']}\n\n{note}"}
            else:
                turns.insert(0, {"role": "system", "content": note})
        text = render_prompt(loaded, turns, model)
    forced = _forced(request)
    return text + forced_prefix(forced) if forced is not None else text


def _forced_choice(choice: Choice, name: str) -> Choice:
    whole = forced_prefix(name) + choice.text
    text, calls = parse_tagged_calls(whole if "</tool_call>" in whole else whole + "</tool_call>")
    if not calls:  # the arguments are not JSON: the tool loop tells the model so
        raw = choice.text.split("</tool_call>")[0].strip()
        raw = raw[:-1].rstrip() if raw.endswith("}") else raw
        calls = (ToolCall(id="call_0", name=name, arguments=raw),)
        text = ""
    return choice.model_copy(
        update={"text": text, "tool_calls": calls, "finish_reason": "tool_calls"}
    )


def read_tool_calls(completion: Completion, request: Request) -> Completion:
    """``completion`` with the ``<tool_call>`` blocks of its text read as calls."""
    if not request.tools or request.tool_choice == "none":
        return completion
    forced = _forced(request)
    choices = tuple(
        _forced_choice(c, forced) if forced is not None else prompted_choice(c, request)
        for c in completion.choices
    )
    return completion.model_copy(update={"choices": choices})
