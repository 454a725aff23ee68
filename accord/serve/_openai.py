"""The OpenAI chat-completions shapes: reading a request, building replies and stream chunks.

A served graph is a "model": the last user message is the task; earlier turns (and system
messages) are put before it as context, since a graph takes one task text. The answer is the
output message's text (or its payload's ``answer`` field), and with a ``json_schema`` or
``json_object`` ``response_format`` the exit node's typed payload as JSON.

Caveat: sampling options (temperature, max_tokens, ...) are accepted and ignored: each agent of
the graph decides its own.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from accord.messages import Message, Usage

__all__ = [
    "ChatRequest",
    "RequestProblem",
    "parse_chat",
    "task_of",
    "answer_of",
    "exit_payload_type",
    "streams_exit_tokens",
    "completion_body",
    "chunk",
    "usage_body",
]


class RequestProblem(Exception):
    """A request the server cannot serve; ``status`` and ``code`` go into the error reply."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ChatTurn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The fields of a chat-completions request that the server reads (others are ignored)."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatTurn]
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


def parse_chat(body: Any) -> ChatRequest:
    """Validate a decoded request body.

    Raises:
        RequestProblem: a missing or ill-typed field, or no user message.
    """
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise RequestProblem(f"invalid request: {where}: {first['msg']}.") from None
    if not any(t.role == "user" for t in request.messages):
        raise RequestProblem("messages holds no user message: the last user message is the task.")
    return request


def _text(turn: ChatTurn) -> str:
    content = turn.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise RequestProblem(
                f"a {turn.role} message has a {part.get('type')!r} part: a served graph takes text "
                "only."
            )
        parts.append(part["text"])
    return "".join(parts)


def task_of(request: ChatRequest) -> str:
    """The task text: the last user message, after the conversation before it, if any."""
    turns = request.messages
    last = max(i for i, t in enumerate(turns) if t.role == "user")
    task = _text(turns[last])
    before = [(t.role, _text(t)) for t in turns[:last]]
    if not before:
        return task
    context = "\n\n".join(f"[{role}]\n{text}" for role, text in before if text)
    return f"Conversation so far:\n\n{context}\n\nTask:\n{task}"


def exit_payload_type(graph: Any) -> type[Any] | None:
    """The payload type every exit node of ``graph`` produces (None: text, or mixed types)."""
    types = {graph.nodes[name].produces for name in graph.exits}
    found = types.pop() if len(types) == 1 else None
    return found


def check_response_format(graph: Any, response_format: dict[str, Any] | None) -> bool:
    """Whether the reply must be the exit payload as JSON.

    Raises:
        RequestProblem: JSON was asked for but the graph's output is text, or the schema asks for
            fields the payload does not have.
    """
    if not response_format or response_format.get("type", "text") == "text":
        return False
    kind = response_format.get("type")
    if kind not in ("json_schema", "json_object"):
        raise RequestProblem(
            f"response_format type {kind!r} is not supported: use 'text', 'json_object' or "
            "'json_schema'.",
            code="unsupported_response_format",
        )
    payload = exit_payload_type(graph)
    if payload is None:
        raise RequestProblem(
            f"graph {graph.name!r} answers in text, so it cannot honour a {kind} response_format: "
            "serve a graph whose exit node produces a payload type, or drop response_format.",
            code="unsupported_response_format",
        )
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        have = set(payload.model_json_schema().get("properties", {}))
        wanted = set(schema.get("properties", {})) | set(schema.get("required", []))
        missing = sorted(wanted - have)
        if missing:
            raise RequestProblem(
                f"response_format asks for {', '.join(missing)}, which graph {graph.name!r}'s "
                f"output {payload.__name__} does not have (its fields: {', '.join(sorted(have))}).",
                code="unsupported_response_format",
            )
    return True


def answer_of(output: Message | None, as_json: bool) -> str:
    """The reply text of a run's output message."""
    if output is None:
        return ""
    if as_json and output.payload is not None:
        return output.payload.model_dump_json()
    answer = getattr(output.payload, "answer", None)
    return answer if isinstance(answer, str) and answer else output.text


def streams_exit_tokens(graph: Any) -> bool:
    """Whether the exit node's tokens are the answer as they stream.

    True for one text exit node outside any loop (it runs once, so what it streams is the
    answer); otherwise the answer is sent in one chunk when the run ends.
    """
    import networkx as nx

    exits = list(graph.exits)
    if len(exits) != 1 or graph.nodes[exits[0]].produces is not None:
        return False
    g = graph.to_networkx()
    if g.has_edge(exits[0], exits[0]):
        return False
    return all(exits[0] not in c or len(c) == 1 for c in nx.strongly_connected_components(g))


def usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def _finish_reason(status: str) -> str:
    return "stop" if status == "completed" else "length"


def completion_body(
    run_id: str, model: str, text: str, usage: Usage, status: str
) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    return {
        "id": f"chatcmpl-{run_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": _finish_reason(status),
                "logprobs": None,
            }
        ],
        "usage": usage_body(usage),
        "run_id": run_id,
        "run_status": status,
    }


def chunk(
    run_id: str,
    model: str,
    *,
    text: str | None = None,
    role: bool = False,
    finish: str | None = None,
    usage: Usage | None = None,
) -> bytes:
    """One SSE ``chat.completion.chunk`` line (a usage chunk has no choices)."""
    body: dict[str, Any] = {
        "id": f"chatcmpl-{run_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "run_id": run_id,
    }
    if usage is not None:
        body["choices"] = []
        body["usage"] = usage_body(usage)
    else:
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def status_finish(status: str) -> str:
    return _finish_reason(status)
