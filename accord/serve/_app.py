"""The ASGI app: OpenAI-compatible chat completions over graphs, a runs API, health and models.

Routes: ``GET /healthz``, ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/runs``,
``GET /v1/runs/{id}``, ``GET /v1/runs/{id}/events`` (SSE, resumable with ``Last-Event-ID``),
``POST /v1/runs/{id}/cancel``, ``POST /v1/runs/{id}/answers`` (a waiting run's answers) and
``GET /v1/runs/{id}/trace``. Errors use OpenAI's shape
(``{"error": {"message", "type", "code"}}``).

Caveat: a chat-completions run belongs to its HTTP request: when the client goes away the run and
its model calls are cancelled. Use the runs API for work that must outlive a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from accord import _otel
from accord.errors import AccordError, UsageError
from accord.serve import _openai as oa
from accord.serve._guard import Guard, read_json
from accord.serve._runs import Busy, Closing, LiveRun, RunManager
from accord.serve._store import RunsStore

__all__ = ["build_app", "Settings"]


class Settings:
    """The server's limits (see :func:`accord.serve.app`)."""

    def __init__(
        self,
        *,
        api_key: str | None,
        max_runs: int,
        max_body_bytes: int,
        timeout: float | None,
        grace: float,
    ) -> None:
        self.api_key = api_key
        self.max_runs = max_runs
        self.max_body_bytes = max_body_bytes
        self.timeout = timeout
        self.grace = grace


def error(
    status: int, message: str, code: str, headers: Mapping[str, str] | None = None
) -> Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "code": code, "param": None}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


class _Server:
    def __init__(self, graphs: dict[str, Any], runs: RunManager, store: RunsStore, s: Settings):
        self.graphs = graphs
        self.runs = runs
        self.store = store
        self.settings = s
        self.created = int(time.time())
        self.live_tokens = {name: oa.streams_exit_tokens(g) for name, g in graphs.items()}
        """Per graph: whether its exit node's tokens are the answer as they stream."""

    # ------------------------------------------------------------------ helpers

    def _graph(self, name: Any) -> Any:
        graph = self.graphs.get(name) if isinstance(name, str) else None
        if graph is None:
            raise oa.RequestProblem(
                f"no graph named {name!r} is served here; served: {', '.join(self.graphs)} "
                "(GET /v1/models lists them).",
                status=404,
                code="model_not_found",
            )
        return graph

    def _start(
        self, request: Request, graph: Any, task: str, *, tokens: bool, timeout: float | None
    ) -> LiveRun:
        tracer = _otel.TRACER
        if tracer is None:
            return self.runs.start(graph, task, tokens=tokens, timeout=timeout)
        with tracer.remote_context(request.headers):
            return self.runs.start(graph, task, tokens=tokens, timeout=timeout)

    def _refusal(self, exc: BaseException) -> Response:
        if isinstance(exc, Busy):
            return error(
                429,
                f"the server is running its limit of {self.runs.max_runs} runs; retry shortly.",
                "too_many_runs",
                {"Retry-After": "1"},
            )
        return error(503, "the server is shutting down and starts no new runs.", "shutting_down")

    # ------------------------------------------------------------------ routes

    async def healthz(self, request: Request) -> Response:
        status = 503 if self.runs.closing else 200
        body = {
            "status": "closing" if self.runs.closing else "ok",
            "runs": len(self.runs.active),
            "max_runs": self.runs.max_runs,
        }
        return JSONResponse(body, status_code=status)

    async def models(self, request: Request) -> Response:
        data = [
            {"id": name, "object": "model", "created": self.created, "owned_by": "accord"}
            for name in self.graphs
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat(self, request: Request) -> Response:
        try:
            chat = oa.parse_chat(await read_json(request, self.settings.max_body_bytes))
            graph = self._graph(chat.model)
            as_json = oa.check_response_format(graph, chat.response_format)
            task = oa.task_of(chat)
        except oa.RequestProblem as exc:
            return error(exc.status, str(exc), exc.code)
        live_tokens = chat.stream and not as_json and self.live_tokens[chat.model]
        try:
            run = self._start(
                request, graph, task, tokens=live_tokens, timeout=self.settings.timeout
            )
        except (Busy, Closing) as exc:
            return self._refusal(exc)
        headers = {"x-accord-run-id": run.run_id}
        if chat.stream:
            exit_node = next(iter(graph.exits)) if live_tokens else None
            return StreamingResponse(
                self._stream(run, chat.model, exit_node, as_json),
                media_type="text/event-stream",
                headers={**headers, "cache-control": "no-cache"},
            )
        if not await _wait_or_disconnect(run, request):
            await run.cancel()
            return Response(status_code=499, headers=headers)
        if run.result is None:
            return self._run_error(run, headers)
        text = oa.answer_of(run.result.output, as_json)
        body = oa.completion_body(run.run_id, chat.model, text, run.result.usage, run.result.status)
        return JSONResponse(body, headers=headers)

    def _run_error(self, run: LiveRun, headers: Mapping[str, str]) -> Response:
        exc = run.error
        if isinstance(exc, TimeoutError):
            return error(
                504,
                f"run {run.run_id} took longer than the server's timeout of "
                f"{self.settings.timeout} s and was cancelled.",
                "timeout",
                headers,
            )
        if isinstance(exc, UsageError):
            return error(500, f"{type(exc).__name__}: {exc}", "graph_error", headers)
        if isinstance(exc, AccordError):
            return error(502, f"{type(exc).__name__}: {exc}", "run_failed", headers)
        name = type(exc).__name__ if exc is not None else "cancelled"
        return error(
            500, f"run {run.run_id} ended without a result ({name}).", "run_failed", headers
        )

    async def _stream(
        self, run: LiveRun, model: str, exit_node: str | None, as_json: bool
    ) -> AsyncIterator[bytes]:
        try:
            yield oa.chunk(run.run_id, model, role=True, text="")
            streamed = False
            async for _, event in run.follow():
                if exit_node is not None and event.kind == "token" and event.node == exit_node:
                    streamed = True
                    yield oa.chunk(run.run_id, model, text=event.text)
            result = run.result
            if result is None:
                failure = self._run_error(run, {})
                yield b"data: " + bytes(failure.body) + b"\n\n"
                return
            if not streamed:
                yield oa.chunk(run.run_id, model, text=oa.answer_of(result.output, as_json))
            yield oa.chunk(run.run_id, model, finish=oa.status_finish(result.status))
            yield oa.chunk(run.run_id, model, usage=result.usage)
            yield b"data: [DONE]\n\n"
        finally:
            if not run.done:  # the client went away: cancel the run and its model calls
                await run.cancel()

    # ------------------------------------------------------------------ runs API

    async def create_run(self, request: Request) -> Response:
        try:
            body = await read_json(request, self.settings.max_body_bytes)
            if not isinstance(body, dict):
                raise oa.RequestProblem(
                    'the body must be a JSON object: {"model": ..., "task": ...}.'
                )
            graph = self._graph(body.get("model", body.get("graph")))
            task = body.get("task", body.get("input"))
            if task is None and "messages" in body:
                task = oa.task_of(
                    oa.parse_chat({"model": graph.name, "messages": body["messages"]})
                )
            if not isinstance(task, str):
                raise oa.RequestProblem('give the run\'s task as "task": a string (or "messages").')
        except oa.RequestProblem as exc:
            return error(exc.status, str(exc), exc.code)
        try:
            run = self._start(
                request, graph, task, tokens=bool(body.get("stream_tokens", True)), timeout=None
            )
        except (Busy, Closing) as exc:
            return self._refusal(exc)
        return JSONResponse(
            {"id": run.run_id, "object": "accord.run", "graph": graph.name, "status": "running"},
            status_code=202,
            headers={"location": f"/v1/runs/{run.run_id}", "x-accord-run-id": run.run_id},
        )

    async def get_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        live = self.runs.get(run_id)
        if live is not None and (
            not live.done or live.result is not None or live.error is not None
        ):
            result = live.result
            body: dict[str, Any] = {
                "id": run_id,
                "object": "accord.run",
                "graph": live.graph.name,
                "status": live.status,
                "started_at": live.started_at,
                "events": len(live.events),
                "output": oa.answer_of(result.output, False) if result is not None else None,
                "usage": oa.usage_body(result.usage) if result is not None else None,
                "error": f"{type(live.error).__name__}: {live.error}"
                if live.error and not isinstance(live.error, asyncio.CancelledError)
                else None,
            }
            if live.done and result is None:
                stored = await asyncio.to_thread(self.store.get, run_id)
                if stored is not None:
                    body["usage"] = oa.usage_body(stored.usage)
            if body["status"] == "waiting":  # answer with POST /v1/runs/{id}/answers
                body["questions"] = await asyncio.to_thread(self.store.pending, run_id)
            return JSONResponse(body)
        stored = await asyncio.to_thread(self.store.get, run_id)
        if stored is None:
            return error(404, f"no run {run_id!r} here or in the run store.", "run_not_found")
        found: dict[str, Any] = {
            "id": run_id,
            "object": "accord.run",
            "graph": stored.graph,
            "status": stored.status,
            "started_at": stored.started_at,
            "stop_reason": stored.stop_reason,
            "output": oa.answer_of(stored.output, False) if stored.output else None,
            "usage": oa.usage_body(stored.usage),
        }
        if stored.status == "waiting":  # answer with POST /v1/runs/{id}/answers
            found["questions"] = await asyncio.to_thread(self.store.pending, run_id)
        return JSONResponse(found)

    async def run_events(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        try:
            after = max(0, int(raw))
        except ValueError:
            return error(400, f"Last-Event-ID {raw!r} is not an event number.", "invalid_event_id")
        live = self.runs.get(run_id)
        if live is not None:
            return StreamingResponse(_sse_live(live, after), media_type="text/event-stream")
        try:
            stored = await asyncio.to_thread(self.store.events, run_id)
        except UsageError:
            return error(404, f"no run {run_id!r} here or in the run store.", "run_not_found")
        return StreamingResponse(_sse_stored(stored, after), media_type="text/event-stream")

    async def cancel_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        live = self.runs.get(run_id)
        if live is None:
            if await asyncio.to_thread(self.store.get, run_id) is None:
                return error(404, f"no run {run_id!r} here or in the run store.", "run_not_found")
            return error(409, f"run {run_id!r} is not running in this server.", "run_not_running")
        if live.done:
            return error(409, f"run {run_id!r} already ended ({live.status}).", "run_not_running")
        await live.cancel()
        return JSONResponse({"id": run_id, "object": "accord.run", "status": live.status})

    async def answer_run(self, request: Request) -> Response:
        """Answer a waiting run's questions and continue it (202; 400 for a wrong answer)."""
        run_id = request.path_params["run_id"]
        try:
            body = await read_json(request, self.settings.max_body_bytes)
            answers = body.get("answers") if isinstance(body, dict) else None
            if not isinstance(answers, dict) or not answers:
                raise oa.RequestProblem(
                    'give the answers as {"answers": {"QUESTION_ID": value, ...}} '
                    "(GET /v1/runs/{id} lists the pending questions)."
                )
        except oa.RequestProblem as exc:
            return error(exc.status, str(exc), exc.code)
        stored = await asyncio.to_thread(self.store.get, run_id)
        if stored is None:
            return error(404, f"no run {run_id!r} in the run store.", "run_not_found")
        live = self.runs.get(run_id)
        if stored.status != "waiting" or (live is not None and not live.done):
            return error(
                409, f"run {run_id!r} is {stored.status}, not waiting for answers.", "not_waiting"
            )
        try:
            graph = self._graph(stored.graph)
        except oa.RequestProblem as exc:
            return error(exc.status, str(exc), exc.code)
        try:
            await asyncio.to_thread(self.store.give_answers, run_id, answers)
        except UsageError as exc:  # AnswerError: the run stays waiting
            return error(400, str(exc), "invalid_answer")
        try:
            self.runs.resume(graph, run_id, tokens=True)
        except (Busy, Closing) as exc:
            return self._refusal(exc)
        return JSONResponse(
            {"id": run_id, "object": "accord.run", "graph": graph.name, "status": "running"},
            status_code=202,
            headers={"location": f"/v1/runs/{run_id}", "x-accord-run-id": run_id},
        )

    async def trace(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            page = await asyncio.to_thread(self.store.trace, run_id)
        except AccordError as exc:
            return error(500, f"{type(exc).__name__}: {exc}", "store_error")
        if page is None:
            return error(404, f"no run {run_id!r} in the run store.", "run_not_found")
        return HTMLResponse(page)


async def _wait_or_disconnect(run: LiveRun, request: Request) -> bool:
    """Wait for the run; False when the client disconnected first."""
    assert run.runner is not None

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.create_task(gone())
    try:
        done, _ = await asyncio.wait({run.runner, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    return run.runner in done


def _sse(number: int, kind: str, data: Any) -> bytes:
    text = json.dumps(data, separators=(",", ":"), default=str)
    return f"id: {number}\nevent: {kind}\ndata: {text}\n\n".encode()


async def _sse_live(run: LiveRun, after: int) -> AsyncIterator[bytes]:
    async for number, event in run.follow(after):
        yield _sse(number, event.kind, event.model_dump(mode="json"))


async def _sse_stored(events: list[dict[str, Any]], after: int) -> AsyncIterator[bytes]:
    for number, event in enumerate(events, start=1):
        if number > after:
            yield _sse(number, str(event.get("kind", "event")), event)


def build_app(graphs: dict[str, Any], backend: Any, store: Any, settings: Settings) -> Any:
    """The ASGI app serving ``graphs`` (already validated and named)."""
    runs_store = RunsStore(store)
    runs = RunManager(backend, runs_store.run_options(), max_runs=settings.max_runs)
    server = _Server(graphs, runs, runs_store, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        await runs.shutdown(settings.grace)
        runs_store.close()

    routes = [
        Route("/healthz", server.healthz, methods=["GET"]),
        Route("/v1/models", server.models, methods=["GET"]),
        Route("/v1/chat/completions", server.chat, methods=["POST"]),
        Route("/v1/runs", server.create_run, methods=["POST"]),
        Route("/v1/runs/{run_id}", server.get_run, methods=["GET"]),
        Route("/v1/runs/{run_id}/events", server.run_events, methods=["GET"]),
        Route("/v1/runs/{run_id}/cancel", server.cancel_run, methods=["POST"]),
        Route("/v1/runs/{run_id}/answers", server.answer_run, methods=["POST"]),
        Route("/v1/runs/{run_id}/trace", server.trace, methods=["GET"]),
    ]
    inner = Starlette(routes=routes, lifespan=lifespan)
    guarded = Guard(inner, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes)
    guarded.state = server  # for tests and embedding applications
    return guarded
