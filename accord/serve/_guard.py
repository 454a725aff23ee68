"""The front door: bearer-token auth and request size limits, as a plain ASGI wrapper.

``GET /healthz`` needs no token (load balancers probe it). Every other request needs
``Authorization: Bearer <key>`` when the server has a key; the key is compared in constant time
and never logged. A body larger than the limit is refused with 413, from its
``Content-Length`` before it is read, or while it is read when the client streams it.

Caveat: the limit covers request bodies only; replies (streams) are as long as the run makes them.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.requests import Request

from accord.serve._openai import RequestProblem

__all__ = ["Guard", "read_json"]

Scope = dict[str, Any]


async def _reply(send: Any, status: int, message: str, code: str, headers: list[Any]) -> None:
    kind = "invalid_request_error"
    body = json.dumps({"error": {"message": message, "type": kind, "code": code, "param": None}})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


class Guard:
    """Wraps an ASGI app with auth and a body-size check (see module docstring)."""

    def __init__(self, app: Any, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self._key = api_key.encode() if api_key else None
        self.max_body_bytes = max_body_bytes
        self.state: Any = None
        """The server behind the app (its runs and store), set by ``accord.serve.app``."""

    async def aclose(self) -> None:
        """Drain the app's runs as its own shutdown does (for an outer app that mounts it: a
        mounted app's lifespan does not run). Waits the ``grace`` period, then cancels."""
        server = self.state
        if server is not None:
            await server.runs.shutdown(server.settings.grace)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and path.startswith(root):  # mounted under a prefix
            path = path[len(root) :]
        if self._key is not None and path != "/healthz":
            given = headers.get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self._key):
                await _reply(
                    send,
                    401,
                    "missing or wrong API key: send 'Authorization: Bearer <key>' with the key the "
                    "server was started with.",
                    "invalid_api_key",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body_bytes
            except ValueError:
                await _reply(send, 400, "Content-Length is not a number.", "invalid_request", [])
                return
            if too_big:
                await _reply(
                    send,
                    413,
                    f"the request body is {int(length)} bytes; this server takes at most "
                    f"{self.max_body_bytes}.",
                    "request_too_large",
                    [],
                )
                return
        await self.app(scope, receive, send)


async def read_json(request: Request, limit: int) -> Any:
    """The request body decoded as JSON, read up to ``limit`` bytes.

    Raises:
        RequestProblem: the body is larger than ``limit`` (413) or not JSON (400).
    """
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise RequestProblem(
                f"the request body is over {limit} bytes, this server's limit.",
                status=413,
                code="request_too_large",
            )
        parts.append(part)
    try:
        return json.loads(b"".join(parts) or b"null")
    except ValueError as exc:
        raise RequestProblem(f"the request body is not JSON: {exc}.") from None
