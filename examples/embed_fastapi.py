"""A small web app that runs a critique graph per request.

    pip install fastapi uvicorn
    ACCORD_MODEL=openai:gpt-4o-mini uvicorn examples.embed_fastapi:app --port 8000
    curl -s localhost:8000/ask -H 'content-type: application/json' -d '{"task": "Name a prime above 100."}'

The graph is built once; each request runs it concurrently with the others. Model errors become
HTTP 502 with accord's message; an invalid request is 422 (FastAPI's validation).
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent))

from critique import build  # noqa: E402

import accord  # noqa: E402


class Ask(BaseModel):
    task: str


class Reply(BaseModel):
    answer: str
    drafts: int
    tokens: int
    run_id: str


def create_app(model: accord.Backend | None = None) -> FastAPI:
    api = FastAPI(title="accord example")
    graph = build()
    chosen = model

    @api.post("/ask")
    async def ask(body: Ask) -> Reply:
        nonlocal chosen
        if chosen is None:
            chosen = accord.backend(accord.default_model())
        try:
            result = await graph.run(body.task, chosen)
        except accord.RunError as exc:
            raise HTTPException(status_code=502, detail=f"{type(exc).__name__}: {exc}") from None
        drafts = sum(1 for m in result.transcript if m.sender == "writer")
        return Reply(
            answer=result.text,
            drafts=drafts,
            tokens=result.usage.total_tokens,
            run_id=result.run_id,
        )

    return api


app = create_app()
