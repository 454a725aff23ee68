"""Embed accord in a FastAPI application: an endpoint of your own, and an OpenAI-compatible mount.

    pip install 'accord[serve]'
    ACCORD_MODEL=openai:gpt-4o-mini uvicorn examples.embed_fastapi:app --port 8000
    curl -s localhost:8000/ask -H 'content-type: application/json' -d '{"task": "Name a prime above 100."}'
    # any OpenAI client: OpenAI(base_url="http://localhost:8000/accord/v1", api_key="-"),
    # model="critique"

``ACCORD_MODEL`` picks the model (``accord.default_model()`` reads it). The graph and the backend
are built once and shared by every request; at most ``max_runs`` runs go at once (past that,
429 with ``Retry-After``). Model errors become 502 with accord's message.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent))

from critique import build  # noqa: E402

import accord  # noqa: E402
import accord.serve  # noqa: E402


class Ask(BaseModel):
    task: str


class Reply(BaseModel):
    answer: str
    drafts: int
    tokens: int
    run_id: str


def create_app(
    model: accord.Backend | None = None, *, store: Any = None, max_runs: int = 8
) -> FastAPI:
    """The application: ``POST /ask`` runs the graph in-process; ``/accord/v1`` serves it."""
    backend = model or accord.backend(accord.default_model())  # one backend for every request
    graph = build()
    slots = asyncio.Semaphore(max_runs)
    served = accord.serve.app({"critique": graph}, backend=backend, store=store, max_runs=max_runs)

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        yield
        await served.aclose()  # a mounted app's own shutdown does not run: drain its runs here

    api = FastAPI(title="accord example", lifespan=lifespan)

    @api.post("/ask")
    async def ask(body: Ask) -> Reply:
        if slots.locked():
            raise HTTPException(status_code=429, detail="busy", headers={"Retry-After": "1"})
        async with slots:
            try:
                result = await graph.run(body.task, backend)
            except accord.RunError as exc:
                raise HTTPException(
                    status_code=502, detail=f"{type(exc).__name__}: {exc}"
                ) from None
        drafts = sum(1 for m in result.transcript if m.sender == "writer")
        return Reply(
            answer=result.text,
            drafts=drafts,
            tokens=result.usage.total_tokens,
            run_id=result.run_id,
        )

    api.mount("/accord", served)
    return api


def __getattr__(name: str) -> Any:
    # `uvicorn examples.embed_fastapi:app` builds the app (and resolves ACCORD_MODEL) on demand.
    if name == "app":
        return create_app()
    raise AttributeError(name)
