"""examples/embed_fastapi.py: an in-process endpoint and the OpenAI-compatible mount, served by
uvicorn on 127.0.0.1."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import httpx
import openai
from _server import serving

from accord.testing import FunctionBackend

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_embed_fastapi_serves_its_endpoint_and_the_openai_mount(tmp_path: Path) -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        module = importlib.import_module("embed_fastapi")
    finally:
        sys.path.remove(str(EXAMPLES))
    backend = FunctionBackend(
        lambda r: '{"approved": true}' if r.agent == "editor" else "rain on the roof"
    )
    api = module.create_app(backend, store=tmp_path / "runs.db")
    with serving(api) as url:
        root = url.removesuffix("/v1")
        ok = httpx.post(root + "/ask", json={"task": "a poem"})
        bad = httpx.post(root + "/ask", json={"nope": 1})
        client = openai.OpenAI(base_url=root + "/accord/v1", api_key="-", max_retries=0)
        reply = client.chat.completions.create(
            model="critique", messages=[{"role": "user", "content": "a poem"}]
        )
    assert ok.status_code == 200 and ok.json()["answer"] == "rain on the roof"
    assert ok.json()["drafts"] == 1
    assert bad.status_code == 422
    assert reply.choices[0].message.content == "rain on the roof"
