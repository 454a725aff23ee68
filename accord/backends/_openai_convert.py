"""Translate between accord's Request/Completion and the OpenAI chat-completions wire format.

:func:`build_params` turns a :class:`Request` into keyword arguments for
``chat.completions.create`` (structured output as ``json_schema``, JSON mode with the schema inside
it as llama.cpp takes it, plain JSON mode, or instructions);
:func:`parse_completion` checks a raw 200 body (content type, JSON, choices, message) and turns it
into choices, usage and model name; :func:`read_chunk` reads one streamed chunk.

Caveat: the caller-identifying fields of a request (``agent``, ``round``, ``run_id``) are never
put on the wire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from accord.backends._openai_errors import excerpt
from accord.backends._tool_calls import parse_native_calls
from accord.backends.base import Choice, Request, TokenLogprob
from accord.errors import EmptyCompletionError, InvalidProviderResponseError, RefusalError

__all__ = [
    "StructuredOutput",
    "StructuredMode",
    "STRUCTURED_MODES",
    "ParsedCompletion",
    "ChunkData",
    "build_params",
    "parse_completion",
    "read_chunk",
    "schema_instructions",
    "estimate_tokens",
]

StructuredOutput = Literal["json_schema", "json_object+schema", "json_object", "instructions"]
"""How a ``response_schema`` goes on the wire (one concrete mode)."""
StructuredMode = Literal["auto", "json_schema", "json_object+schema", "json_object", "instructions"]
"""What a backend is configured with: a concrete mode, or ``"auto"`` (detect, fall back)."""

STRUCTURED_MODES: tuple[StructuredOutput, ...] = (
    "json_schema",
    "json_object+schema",
    "json_object",
    "instructions",
)
"""Every concrete mode, most constrained first: the order ``"auto"`` falls back in."""
MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]

_NAME_OK = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(frozen=True)
class ParsedCompletion:
    """A checked 200 body."""

    choices: tuple[Choice, ...]
    prompt_tokens: int | None
    completion_tokens: int | None
    model: str


@dataclass(frozen=True)
class ChunkData:
    """What one streamed chunk carried for choice 0."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    refusal: str | None


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters a token) for servers that report no usage."""
    return max(1, (len(text) + 3) // 4) if text else 0


def schema_instructions(schema: Mapping[str, Any]) -> str:
    """The instruction appended to the system prompt when the server cannot take a schema."""
    return (
        "Answer with one JSON object and nothing else (no prose, no code fences). "
        "It must conform to this JSON schema:\n" + json.dumps(schema, separators=(",", ":"))
    )


def build_params(
    request: Request,
    *,
    model: str,
    structured_output: StructuredOutput,
    max_tokens_param: MaxTokensParam = "max_tokens",
    stream: bool = False,
    stream_usage: bool = True,
    send_n: bool = True,
) -> dict[str, Any]:
    """Keyword arguments for ``chat.completions.create`` (no ``timeout``)."""
    messages = [{"role": m.role, "content": m.content} for m in request.messages]
    params: dict[str, Any] = {"model": model}
    schema = request.response_schema
    if schema is not None:
        if structured_output == "json_schema":
            name = _NAME_OK.sub("_", request.schema_name or str(schema.get("title") or "payload"))[
                :64
            ]
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name or "payload", "schema": schema},
            }
        elif structured_output == "json_object+schema":
            # llama-cpp-python (and llama.cpp's server) turn this schema into a grammar.
            params["response_format"] = {"type": "json_object", "schema": schema}
        else:
            if structured_output == "json_object":
                params["response_format"] = {"type": "json_object"}
            messages = _with_system_note(messages, schema_instructions(schema))
    params["messages"] = messages
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.max_tokens is not None:
        params[max_tokens_param] = request.max_tokens
    if request.stop:
        params["stop"] = list(request.stop)
    if request.seed is not None:
        params["seed"] = request.seed
    if send_n and request.n != 1:
        params["n"] = request.n
    if request.logprobs and not stream:
        params["logprobs"] = True
        if request.top_logprobs is not None:
            params["top_logprobs"] = request.top_logprobs
    if stream:
        params["stream"] = True
        if stream_usage:
            params["stream_options"] = {"include_usage": True}
    return params


def _with_system_note(messages: list[dict[str, str]], note: str) -> list[dict[str, str]]:
    for i, message in enumerate(messages):
        if message["role"] == "system":
            joined = f"{message['content']}\n\n{note}" if message["content"] else note
            return [*messages[:i], {"role": "system", "content": joined}, *messages[i + 1 :]]
    return [{"role": "system", "content": note}, *messages]


# ---------------------------------------------------------------------- parsing


def parse_completion(
    content_type: str,
    body: bytes,
    *,
    provider: str,
    secrets: Sequence[str] = (),
) -> ParsedCompletion:
    """Check a 200 body and read it.

    Raises:
        InvalidProviderResponseError: not JSON, invalid JSON, no choices, a null message.
        RefusalError: the model refused (``message.refusal``).
        EmptyCompletionError: ``message.content`` is null.
    """

    def invalid(what: str) -> InvalidProviderResponseError:
        return InvalidProviderResponseError(
            f"{provider} answered 200 but {what}; first bytes: {excerpt(body, secrets, 120)!r}",
            provider=provider,
            status_code=200,
            excerpt=excerpt(body, secrets),
        )

    if "json" not in content_type.lower():
        raise invalid(
            f"with content type {content_type or 'none'!r} instead of JSON (often a proxy or "
            "gateway page: check base_url)"
        )
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise invalid(f"the body is not valid JSON ({type(exc).__name__}; truncated?)") from exc
    if not isinstance(data, dict):
        raise invalid("the body is not a JSON object")
    choices_raw = data.get("choices")
    if not isinstance(choices_raw, list) or not choices_raw:
        error = data.get("error")
        if error:
            raise invalid(f"with an error instead of a completion: {excerpt(error, secrets, 200)}")
        raise invalid("the completion has no choices")
    ordered = sorted(choices_raw, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
    choices = tuple(_parse_choice(c, invalid, provider) for c in ordered)
    usage = data.get("usage")
    prompt = completion = None
    if isinstance(usage, dict):
        prompt = _int_or_none(usage.get("prompt_tokens"))
        completion = _int_or_none(usage.get("completion_tokens"))
    model = data.get("model")
    return ParsedCompletion(choices, prompt, completion, model if isinstance(model, str) else "")


def _parse_choice(raw: Any, invalid: Any, provider: str) -> Choice:
    if not isinstance(raw, dict):
        raise invalid("a choice is not a JSON object")
    message = raw.get("message")
    if not isinstance(message, dict):
        raise invalid("a choice has a null or malformed message")
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        raise RefusalError(
            f"{provider}: the model refused: {refusal[:300]}",
            provider=provider,
            status_code=200,
            refusal=refusal,
        )
    content = message.get("content")
    calls = parse_native_calls(message.get("tool_calls"))
    if content is None and calls:
        content = ""
    if content is None:
        raise EmptyCompletionError(
            f"{provider} returned a message with no content (finish_reason "
            f"{raw.get('finish_reason')!r}).",
            provider=provider,
            status_code=200,
        )
    if not isinstance(content, str):
        raise invalid("a message's content is not a string")
    finish = raw.get("finish_reason")
    return Choice(
        text=content,
        finish_reason=finish if isinstance(finish, str) else None,
        logprobs=_parse_logprobs(raw.get("logprobs")),
        tool_calls=calls,
    )


def _parse_logprobs(raw: Any) -> tuple[TokenLogprob, ...] | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("content"), list):
        return None
    out = []
    for item in raw["content"]:
        if not isinstance(item, dict) or not isinstance(item.get("logprob"), int | float):
            continue
        top = tuple(
            (str(t.get("token", "")), float(t["logprob"]))
            for t in item.get("top_logprobs") or ()
            if isinstance(t, dict) and isinstance(t.get("logprob"), int | float)
        )
        out.append(
            TokenLogprob(token=str(item.get("token", "")), logprob=float(item["logprob"]), top=top)
        )
    return tuple(out)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_chunk(chunk: Any) -> ChunkData:
    """Read choice 0 and usage of a streamed chunk (an SDK ``ChatCompletionChunk``)."""
    text = ""
    finish = refusal = None
    choices = getattr(chunk, "choices", None) or ()
    for choice in choices:
        if getattr(choice, "index", 0) != 0:
            continue
        delta = getattr(choice, "delta", None)
        content = getattr(delta, "content", None)
        if isinstance(content, str):
            text += content
        said = getattr(delta, "refusal", None)
        if isinstance(said, str) and said:
            refusal = said
        reason = getattr(choice, "finish_reason", None)
        if isinstance(reason, str):
            finish = reason
    usage = getattr(chunk, "usage", None)
    prompt = _int_or_none(getattr(usage, "prompt_tokens", None))
    completion = _int_or_none(getattr(usage, "completion_tokens", None))
    return ChunkData(text, finish, prompt, completion, refusal)
