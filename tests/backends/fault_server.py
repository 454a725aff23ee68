"""A scriptable OpenAI-compatible HTTP server on 127.0.0.1 for fault-injection tests.

Built on raw ``asyncio.start_server`` so a test controls everything a real proxy or provider can
do wrong: the status, headers and body of each response, delays before the headers and between
SSE chunks, a stream cut after N chunks (FIN, no terminating chunk) or reset (RST via
``SO_LINGER`` 0), and requests that never get an answer. It serves ``POST /v1/chat/completions``
(plain JSON and SSE), any other ``METHOD /path`` given in ``routes`` (``GET /props``), and records
every request it receives together with the number of requests in flight.

Caveat: the server runs on the test's own event loop. It is HTTP/1.1 only, with keep-alive, and
expects request bodies with ``Content-Length`` (what the openai SDK sends).

Example::

    async with FaultServer() as server:
        server.script(Reply(status=429, headers={"retry-after": "2"}), Reply.json(completion("hi")))
        backend = OpenAIBackend("m", base_url=server.base_url, api_key="sk-test")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

__all__ = [
    "FaultServer",
    "Reply",
    "Recorded",
    "completion",
    "sse_events",
    "closed_port",
    "CANARY_KEY",
    "wait_until",
    "FakeTime",
]

CANARY_KEY = "sk-test-CANARY-7f3a9c2e4b"
"""An API key that must never show up in logs, events or error messages."""


@dataclass
class Reply:
    """How the server answers one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    """Seconds to wait before sending the headers."""
    hang: bool = False
    """Never answer (until the client goes away or the server stops)."""
    reset: bool = False
    """Reset the connection (RST) instead of answering, or after ``close_after`` chunks."""
    events: list[str] | None = None
    """SSE events (each a complete ``data: ...`` block); sent with chunked encoding."""
    chunk_delay: float = 0.0
    close_after: int | None = None
    """Cut the stream after this many events: close (FIN) without the terminating chunk."""

    @classmethod
    def json(cls, payload: Any, *, status: int = 200, **kw: Any) -> Reply:
        """A JSON body (a dict, or a string sent as is)."""
        body = payload if isinstance(payload, str) else json.dumps(payload)
        return cls(status=status, body=body.encode(), **kw)

    @classmethod
    def error(
        cls, status: int, message: str = "error", *, code: str | None = None, **kw: Any
    ) -> Reply:
        """An OpenAI-style error body."""
        err = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
        return cls.json(err, status=status, **kw)

    @classmethod
    def stream(cls, events: Iterable[str], **kw: Any) -> Reply:
        """An SSE response."""
        return cls(events=list(events), content_type="text/event-stream", **kw)


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    arrived: float
    """Loop time at arrival."""
    clock: float | None
    """The server's ``clock()`` at arrival (a test's fake clock), when given."""


def completion(
    *texts: str | None,
    finish_reason: str | None = "stop",
    usage: tuple[int, int] | None = (5, 3),
    logprobs: list[tuple[str, float, list[tuple[str, float]]]] | None = None,
    refusal: str | None = None,
    model: str = "test-model",
) -> dict[str, Any]:
    """A chat completion body with one choice per text (``None`` gives ``content: null``)."""
    choices = []
    for i, text in enumerate(texts or ("hello",)):
        choice: dict[str, Any] = {
            "index": i,
            "message": {"role": "assistant", "content": text, "refusal": refusal},
            "finish_reason": finish_reason,
        }
        if logprobs is not None:
            choice["logprobs"] = {
                "content": [
                    {
                        "token": tok,
                        "logprob": lp,
                        "bytes": None,
                        "top_logprobs": [{"token": t, "logprob": v, "bytes": None} for t, v in top],
                    }
                    for tok, lp, top in logprobs
                ]
            }
        choices.append(choice)
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    return body


def sse_events(
    texts: Iterable[str],
    *,
    finish_reason: str | None = "stop",
    usage: tuple[int, int] | None = None,
    done: bool = True,
) -> list[str]:
    """SSE ``data:`` events for a streamed completion: one per text, then finish, usage, [DONE]."""

    def chunk(delta: dict[str, Any], finish: str | None) -> str:
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "test-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n"

    events = [chunk({"role": "assistant", "content": t}, None) for t in texts]
    if finish_reason is not None:
        events.append(chunk({}, finish_reason))
    if usage is not None:
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "test-model",
            "choices": [],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
            },
        }
        events.append(f"data: {json.dumps(body)}\n\n")
    if done:
        events.append("data: [DONE]\n\n")
    return events


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class FakeTime:
    """A clock that only moves when something sleeps; records every requested sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def wait_until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``condition`` every few milliseconds until it holds (fails after ``within`` s)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the condition lives in plain attributes
            await asyncio.sleep(0.002)


Responder = Callable[[Recorded], Reply]


class FaultServer:
    """The scriptable server. Use as ``async with FaultServer() as server``.

    Args:
        default: the reply when the script is empty (a ``Reply`` or a function of the request);
            without one an empty script answers 500 "script exhausted".
        clock: a function whose value is recorded with each request (e.g. a fake clock).
        port: the port to listen on (0: any free port).
    """

    def __init__(
        self,
        *,
        default: Reply | Responder | None = None,
        clock: Callable[[], float] | None = None,
        port: int = 0,
    ) -> None:
        self._script: deque[Reply | Responder] = deque()
        self.routes: dict[str, Reply] = {}
        """Replies to other requests by ``"METHOD /path"`` (e.g. ``"GET /props"``)."""
        self._default = default
        self._clock = clock
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.requests: list[Recorded] = []
        """Chat-completion requests (what tests count)."""
        self.probes: list[Recorded] = []
        """Every other request (a backend asking ``GET /props``, a wrong path)."""
        self.in_flight = 0
        self.max_in_flight = 0
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply | Responder) -> None:
        """Queue replies, answered in order, one per request."""
        self._script.extend(replies)

    async def __aenter__(self) -> FaultServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    # ------------------------------------------------------------------ internals

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    return
                chat = request.method == "POST" and request.path.endswith("/chat/completions")
                (self.requests if chat else self.probes).append(request)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    keep = await self._answer(request, writer)
                finally:
                    self.in_flight -= 1
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            if not writer.is_closing():
                writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> Recorded | None:
        line = await reader.readline()
        if not line:
            return None
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        data = await reader.readexactly(length) if length else b""
        try:
            body: Any = json.loads(data) if data else None
        except ValueError:
            body = data
        return Recorded(
            method=method,
            path=path,
            headers=headers,
            body=body,
            arrived=asyncio.get_running_loop().time(),
            clock=self._clock() if self._clock else None,
        )

    def _next_reply(self, request: Recorded) -> Reply:
        source = self._script.popleft() if self._script else self._default
        if source is None:
            return Reply.error(500, "fault server: script exhausted")
        return source(request) if callable(source) else source

    async def _answer(self, request: Recorded, writer: asyncio.StreamWriter) -> bool:
        route = self.routes.get(f"{request.method} {request.path}")
        if route is not None:
            reply = route
        elif request.method != "POST" or not request.path.endswith("/chat/completions"):
            reply = Reply.error(404, f"no route for {request.method} {request.path}")
        else:
            reply = self._next_reply(request)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.hang:
            await asyncio.Event().wait()
        if reply.reset and reply.events is None:
            _reset(writer)
            return False
        reason = (
            HTTPStatus(reply.status).phrase
            if reply.status in HTTPStatus._value2member_map_
            else "Status"
        )
        head = [f"HTTP/1.1 {reply.status} {reason}", f"content-type: {reply.content_type}"]
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        if reply.events is None:
            head.append(f"content-length: {len(reply.body)}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body)
            await writer.drain()
            return True
        head.append("transfer-encoding: chunked")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        for i, event in enumerate(reply.events):
            if reply.close_after is not None and i >= reply.close_after:
                if reply.reset:
                    _reset(writer)
                else:
                    writer.close()
                return False
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            data = event.encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST: SO_LINGER on with a zero timeout."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
