"""JSON encoding of what the run store holds: messages, model calls, events, and secret redaction.

Everything is JSON text (never pickle). Chat-message contents and reply texts go to a
content-addressed ``blobs`` table and are referenced by hash, and a request that extends the
agent's previous request (its memory of earlier rounds, a re-ask) is stored as a reference to that
request plus the new messages, so an activation's record holds only its own activation however
long the history grows.
Decoding goes through pydantic models and the payload registry; a payload kind that no class of
this process defines decodes to a :class:`StoredPayload` (its kind and fields, for display and
export), broken JSON raises :class:`~accord.errors.StoreCorruptError`.

Texts are stored verbatim (a resume must send exactly what the first run sent); an application
that must scrub its own data passes ``redact=`` to its store. Credentials accord holds itself
(backend keys, headers, a ``base_url``'s ``user:pass@``) are never part of a record. Pattern
redaction (:func:`redact`) applies where records leave the store: exports, traces, ``accord runs
show``, and error texts.

Caveat: text the store cannot encode (a lone surrogate, half an emoji from a server) is stored
with that character replaced by U+FFFD; the run itself is not affected.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ConfigDict, ValidationError
from pydantic_core import PydanticSerializationError, to_json

from accord.backends.base import ChatMessage, Choice, Completion, Request
from accord.errors import StoreCorruptError, StoreDecodeError
from accord.messages import Message, Payload, Usage, payload_class

__all__ = [
    "redact",
    "redact_data",
    "clean_text",
    "encode_message",
    "StoredPayload",
    "dumps",
    "blob_hash",
    "BlobTable",
    "encode_calls",
    "decode_calls",
    "decode_message",
    "load_json",
]

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"sk-[A-Za-z0-9_\-]{6,}"), "sk-[REDACTED]"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/\-]+=*"), r"\1 [REDACTED]"),
    (
        re.compile(
            r'(?i)("(?:authorization|api[_-]?key|apikey|x-api-key)"\s*:\s*)"[^"\\]*(?:\\.[^"\\]*)*"'
        ),
        r'\1"[REDACTED]"',
    ),
    (
        re.compile(
            r"(?i)\b(authorization|api[_-]?key|apikey|x-api-key)(\\?[\"']?\s*[:=]\s*\\?[\"']?)"
            r"(?!\[REDACTED\])[^\s\"'\\,}]+"
        ),
        r"\1\2[REDACTED]",
    ),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s:@]+:[^/\s@]+@"), r"\1[REDACTED]@"),
)


def redact(text: str) -> str:
    """``text`` with anything that looks like an API key or an Authorization value replaced.

    Example::

        >>> redact('{"authorization": "Bearer abc"} and sk-live-1234567890')
        '{"authorization": "[REDACTED]"} and sk-[REDACTED]'
    """
    if "sk-" not in text and "@" not in text:
        low = text.lower()
        if not (
            "authoriz" in low
            or "bearer" in low
            or ("api" in low and ("api_key" in low or "api-key" in low or "apikey" in low))
        ):
            return text
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


def redact_data(value: Any) -> Any:
    """``value`` (plain JSON data) with :func:`redact` applied to every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` with lone surrogates (which UTF-8 cannot hold) replaced by U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def _clean_data(value: Any, scrub: Callable[[str], str] | None) -> Any:
    if isinstance(value, str):
        return clean_text(scrub(value) if scrub is not None else value)
    if isinstance(value, dict):
        return {k: _clean_data(v, scrub) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_data(v, scrub) for v in value]
    return value


def dumps(value: Any) -> str:
    """Compact JSON of ``value`` (plain data: dicts, lists, str, numbers, None)."""
    try:
        return to_json(value).decode()
    except (PydanticSerializationError, UnicodeError):
        return to_json(_clean_data(value, None)).decode()


def encode_message(message: Message, scrub: Callable[[str], str] | None = None) -> str:
    """A message as JSON, verbatim (``scrub``, when given, is applied to each of its strings)."""
    if scrub is None:
        try:  # the same JSON as message.model_dump_json(), in about half the time
            u = message.usage
            payload = message.payload
            return to_json(
                {
                    "id": message.id,
                    "run_id": message.run_id,
                    "sender": message.sender,
                    "recipients": message.recipients,
                    "text": message.text,
                    "payload": None if payload is None else message._dump_payload(payload),
                    "usage": {
                        "requests": u.requests,
                        "prompt_tokens": u.prompt_tokens,
                        "completion_tokens": u.completion_tokens,
                        "cost": u.cost,
                    },
                    "parents": message.parents,
                    "round": message.round,
                    "created_at": message.created_at,
                    "metadata": message.metadata,
                }
            ).decode()
        except (PydanticSerializationError, UnicodeError):
            pass
    data = message.model_dump(mode="python")
    if message.payload is not None:
        data["payload"] = message._dump_payload(message.payload)
    return to_json(_clean_data(data, scrub)).decode()


def blob_hash(text: str) -> str:
    """The key of a text in the ``blobs`` table (96 bits of its SHA-256)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


class BlobTable:
    """Hashes texts for the ``blobs`` table, remembering those already written by this writer.

    ``ref(text)`` returns the text's key and, the first time it is seen, queues the (key, text)
    row in :attr:`new`. :meth:`forget` drops the memory (after a failed write).
    """

    LIMIT = 20_000

    def __init__(self) -> None:
        self._known: dict[str, str] = {}
        self.new: list[tuple[str, str]] = []

    def ref(self, text: str, scrub: Callable[[str], str] | None = None) -> str:
        key = self._known.get(text)
        if key is None:
            clean = clean_text(scrub(text) if scrub is not None else text)
            key = blob_hash(clean)
            if len(self._known) >= self.LIMIT:
                self._known.clear()
            self._known[text] = key
            self.new.append((key, clean))
        return key

    def take(self) -> list[tuple[str, str]]:
        rows, self.new = self.new, []
        return rows

    def forget(self) -> None:
        self._known.clear()
        self.new = []


_REQUEST_SKIP = frozenset({"messages", "agent", "round", "run_id"})

CallKey = tuple[str, int, int]
"""Where a call is stored in its run: (node, round, index among the activation's calls)."""

Earlier = dict[str, tuple[CallKey, tuple[ChatMessage, ...]]]
"""Per agent of a run: where its last call is stored, and that call's chat messages."""


def _encode_request(
    request: Request, ref: Callable[[str], str], at: CallKey, earlier: Earlier
) -> dict[str, Any]:  # texts go to blobs; the rest is small
    out: dict[str, Any] = {"agent": request.agent, "round": request.round}
    messages = request.messages
    keep = 0
    last = earlier.get(request.agent)
    if last is not None:
        where, before = last
        if 0 < len(before) <= len(messages) and all(
            a is b or a == b for a, b in zip(before, messages, strict=False)
        ):
            out["base"], out["keep"] = list(where), len(before)
            keep = len(before)
    out["messages"] = [[m.role, ref(m.content)] for m in messages[keep:]]
    extras = {str(i): _tool_fields(m) for i, m in enumerate(messages[keep:]) if _has_tools(m)}
    if extras:
        out["tool_fields"] = extras
    earlier[request.agent] = (at, messages)
    fields = request.__dict__
    for key, default in _REQUEST_DEFAULT_ITEMS:
        value = fields[key]
        if value is not default and value != default:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _has_tools(m: ChatMessage) -> bool:
    return bool(m.tool_calls) or m.tool_call_id is not None or m.name is not None


def _tool_fields(m: ChatMessage) -> dict[str, Any]:
    """A turn's tool fields (calls, call id, tool name), stored beside its ``[role, text]``."""
    out: dict[str, Any] = {"tool_calls": [c.model_dump() for c in m.tool_calls]}
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        out["name"] = m.name
    return out


_REQUEST_DEFAULTS: dict[str, Any] = {
    name: field.default for name, field in Request.model_fields.items() if name not in _REQUEST_SKIP
}
_REQUEST_DEFAULT_ITEMS = tuple(_REQUEST_DEFAULTS.items())


def _encode_completion(completion: Completion, ref: Callable[[str], str]) -> dict[str, Any]:
    choices = []
    for choice in completion.choices:
        item: dict[str, Any] = {"text": ref(choice.text), "finish_reason": choice.finish_reason}
        if choice.logprobs is not None:
            item["logprobs"] = [lp.model_dump(mode="json") for lp in choice.logprobs]
        if choice.tool_calls:
            item["tool_calls"] = [c.model_dump() for c in choice.tool_calls]
        choices.append(item)
    u = completion.usage
    return {
        "choices": choices,
        "usage": [u.requests, u.prompt_tokens, u.completion_tokens, u.cost],
        "model": completion.model,
        "latency_s": completion.latency_s,
    }


def encode_calls(
    calls: Sequence[tuple[Request, Completion]],
    blobs: BlobTable,
    node: str,
    round: int,
    earlier: Earlier,
    scrub: Callable[[str], str] | None = None,
) -> str:
    """The model calls of activation (node, round) as JSON, their texts moved to ``blobs``.

    A request that repeats the agent's previous request and adds to it (an agent with memory, a
    re-ask) is stored as ``base`` (where that request is), ``keep`` (how many of its messages
    come first) and the new messages only, so a record's size does not grow with the history.
    ``earlier`` carries the agents' last requests from one activation of the run to the next.
    """

    if scrub is None:
        ref: Callable[[str], str] = blobs.ref
    else:

        def ref(text: str) -> str:
            return blobs.ref(text, scrub)

    return dumps(
        [
            {
                "request": _encode_request(r, ref, (node, round, i), earlier),
                "response": _encode_completion(c, ref),
            }
            for i, (r, c) in enumerate(calls)
        ]
    )


def load_json(text: Any, *, path: str, run_id: str, record: str) -> Any:
    """Parse one stored JSON value.

    Raises:
        StoreDecodeError: the column holds bytes (accord writes text only; never unpickled).
        StoreCorruptError: the text is not valid JSON.
    """
    if isinstance(text, bytes | bytearray | memoryview):
        raise StoreDecodeError(
            f"run {run_id!r}, record {record!r} in {path} holds binary data, which accord never "
            "writes (it stores JSON text only and never unpickles). The record was not loaded."
        )
    if not isinstance(text, str):
        raise StoreCorruptError(
            f"run {run_id!r}, record {record!r} in {path} is not JSON text.",
            path=path,
            run_id=run_id,
            record=record,
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreCorruptError(
            f"run {run_id!r}, record {record!r} in {path} is damaged ({exc.msg} at character "
            f"{exc.pos}). Restore the store from a copy, or delete the run.",
            path=path,
            run_id=run_id,
            record=record,
        ) from exc


class StoredPayload(Payload, kind="accord.stored"):
    """A stored payload whose class is not defined in this process (the graph's own ``Payload``
    subclass, read without importing the code that defines it): its kind and its fields, for
    display and export. ``payload.kind`` is the stored kind; the fields are attributes."""

    model_config = ConfigDict(frozen=True, extra="allow")


def generic_payload(kind: str, fields: dict[str, Any]) -> StoredPayload:
    """A :class:`StoredPayload` of ``kind`` holding ``fields``."""
    payload = StoredPayload.model_validate(fields)
    object.__setattr__(payload, "kind", kind)
    return payload


def decode_message(text: Any, *, path: str, run_id: str, record: str) -> Message:
    """A stored message, validated; payloads come from the registry only (a kind that no class of
    this process defines becomes a :class:`StoredPayload`).

    Raises:
        StoreDecodeError: binary data.
        StoreCorruptError: broken JSON, or JSON that is not a message.
    """
    data = load_json(text, path=path, run_id=run_id, record=record)
    payload = data.get("payload") if isinstance(data, dict) else None
    if isinstance(payload, dict) and isinstance(payload.get("kind"), str):
        try:
            payload_class(payload["kind"])
        except StoreDecodeError:
            fields = {k: v for k, v in payload.items() if k != "kind"}
            data = {**data, "payload": None}
            try:
                message = Message.model_validate(data)
            except ValidationError:
                pass  # reported below
            else:
                message.__dict__["payload"] = generic_payload(payload["kind"], fields)
                return message
    try:
        return Message.model_validate(data)
    except ValidationError as exc:
        raise StoreCorruptError(
            f"run {run_id!r}, record {record!r} in {path} is not a valid message: "
            f"{exc.errors()[0]['msg']}.",
            path=path,
            run_id=run_id,
            record=record,
        ) from exc


def decode_calls(
    raw: dict[tuple[str, int], Any], texts: dict[str, str], *, path: str, run_id: str
) -> dict[tuple[str, int], list[tuple[Request, Completion]]]:
    """The model calls of a run's activations as :func:`encode_calls` wrote them.

    Args:
        raw: each activation's (node, round) and its stored calls (parsed JSON).
        texts: the blobs the calls refer to, by key.

    Raises:
        StoreCorruptError: the JSON does not describe calls, a base request is missing, or a
            referenced text is missing.
    """
    messages: dict[CallKey, tuple[ChatMessage, ...]] = {}

    def chat(key: CallKey) -> tuple[ChatMessage, ...]:
        chain: list[CallKey] = []
        while key not in messages:  # follow the bases back to a full request
            chain.append(key)
            if len(chain) > len(raw) * 64 + 64:
                raise ValueError(f"request bases loop at {key}")
            req = raw[key[:2]][key[2]]["request"]
            base = req.get("base")
            if base is None:
                break
            key = (base[0], base[1], base[2])
        for k in reversed(chain):
            req = raw[k[:2]][k[2]]["request"]
            base = req.get("base")
            start = messages[(base[0], base[1], base[2])][: req["keep"]] if base else ()
            extra = req.get("tool_fields", {})
            new = tuple(
                ChatMessage(role=r, content=texts[t], **extra.get(str(i), {}))
                for i, (r, t) in enumerate(req["messages"])
            )
            messages[k] = start + new
        return messages[key if not chain else chain[0]]

    out: dict[tuple[str, int], list[tuple[Request, Completion]]] = {}
    for (node, rnd), calls in raw.items():
        record = f"activation {node}/{rnd}"
        decoded: list[tuple[Request, Completion]] = []
        try:
            for i, call in enumerate(calls):
                req = {
                    k: v
                    for k, v in call["request"].items()
                    if k not in ("base", "keep", "tool_fields")
                }
                req["messages"] = chat((node, rnd, i))
                req["run_id"] = run_id
                resp = call["response"]
                choices = tuple(
                    Choice(
                        text=texts[ch["text"]],
                        finish_reason=ch.get("finish_reason"),
                        logprobs=ch.get("logprobs"),
                        tool_calls=ch.get("tool_calls", ()),
                    )
                    for ch in resp["choices"]
                )
                requests, prompt, completion, cost = resp["usage"]
                usage = Usage(
                    requests=requests,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    cost=cost,
                )
                decoded.append(
                    (
                        Request.model_validate(req),
                        Completion(
                            choices=choices,
                            usage=usage,
                            model=resp.get("model", ""),
                            latency_s=resp.get("latency_s", 0.0),
                        ),
                    )
                )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise StoreCorruptError(
                f"run {run_id!r}, record {record!r} in {path}: its model calls are damaged "
                f"({exc!r}).",
                path=path,
                run_id=run_id,
                record=record,
            ) from exc
        out[(node, rnd)] = decoded
    return out
