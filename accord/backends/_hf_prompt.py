"""Turning a :class:`Request`'s messages into the prompt text a local model reads.

The tokenizer's chat template renders the conversation with an opened assistant turn
(``add_generation_prompt=True``). A tokenizer without a template is a plain completion model
(base models, small task models): the prompt is the text of the messages as it is, joined by a
blank line (one user message: exactly its text), after BOS when the tokenizer adds one; nothing
else is added, so ``Agent(..., template="{{ task }}")`` feeds the model exactly the task. A ``response_schema`` adds
instructions with the JSON schema to the system message: the model is asked, not constrained, and
validating (and re-asking) is the agent's job. Caveat: templates that reject a system role get
the system text merged into the first user message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from accord.backends._hf_load import Loaded
from accord.backends.base import ChatMessage, Request
from accord.errors import ConfigError

__all__ = ["schema_instructions", "chat_messages", "render_prompt"]


def schema_instructions(schema: dict[str, Any], name: str | None = None) -> str:
    """The text that asks a model for one JSON object matching ``schema``."""
    label = f" ({name})" if name else ""
    return (
        f"Reply with one JSON object that conforms to this JSON schema{label}, and nothing "
        "else: no prose, no code fences.\n" + json.dumps(schema, indent=None, sort_keys=True)
    )


def chat_messages(request: Request | Sequence[ChatMessage]) -> list[dict[str, str]]:
    """The request's messages as template dicts, schema instructions added to the system one.

    Raises:
        ConfigError: there are no messages.
    """
    messages = request.messages if isinstance(request, Request) else tuple(request)
    if not messages:
        raise ConfigError("the request has no messages. Give at least one user message.")
    turns = [{"role": m.role, "content": m.content} for m in messages]
    if isinstance(request, Request) and request.response_schema is not None:
        text = schema_instructions(request.response_schema, request.schema_name)
        if turns[0]["role"] == "system":
            turns[0] = {"role": "system", "content": f"{turns[0]['content']}\n\n{text}"}
        else:
            turns.insert(0, {"role": "system", "content": text})
    return turns


def _merge_system(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    system = "\n\n".join(t["content"] for t in turns if t["role"] == "system")
    rest = [dict(t) for t in turns if t["role"] != "system"]
    if not system:
        return rest
    if rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    else:
        rest.insert(0, {"role": "user", "content": system})
    return rest


def render_prompt(loaded: Loaded, turns: list[dict[str, str]], model_name: str) -> str:
    """The prompt text for ``turns``: chat template, or the text as it is without one.

    Raises:
        ConfigError: the chat template fails on these messages even with the system message
            merged into the first user message.
    """
    if not loaded.has_chat_template:  # plain completion: the text as it is
        return loaded.bos_text + "\n\n".join(t["content"] for t in turns)
    try:
        text: str = loaded.tokenizer.apply_chat_template(
            turns, tokenize=False, add_generation_prompt=True
        )
        return text
    except Exception as first:  # jinja2 raises its own TemplateError / raise_exception
        if not any(t["role"] == "system" for t in turns):
            raise ConfigError(
                f"the chat template of model {model_name!r} rejected the messages: {first}"
            ) from first
        try:
            merged: str = loaded.tokenizer.apply_chat_template(
                _merge_system(turns), tokenize=False, add_generation_prompt=True
            )
            return merged
        except Exception as exc:
            raise ConfigError(
                f"the chat template of model {model_name!r} rejected the messages: {exc}"
            ) from exc
