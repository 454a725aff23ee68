"""Production behaviour: auth, the concurrent-run limit, body size, timeouts, client disconnects."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from _server import Recorder, chain, serving

import accord.serve
from accord.store import open_store


def _ask(url: str, key: str = "unused", **options: object) -> object:
    client = openai.OpenAI(base_url=url, api_key=key, max_retries=0)
    return client.chat.completions.create(
        model="trio",
        messages=[{"role": "user", "content": "x"}],
        **options,  # type: ignore[call-overload]
    )


def _wait(predicate: object, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_serve_auth_refuses_a_missing_or_wrong_key_and_accepts_the_right_one(
    tmp_path: Path,
) -> None:
    api = accord.serve.app(
        [chain()], backend=Recorder().backend, store=tmp_path / "r.db", api_key="s3cret-key"
    )
    with serving(api) as url:
        with pytest.raises(openai.AuthenticationError) as wrong:
            _ask(url, "not-the-key")
        assert httpx.get(url + "/models").status_code == 401
        ok = _ask(url, "s3cret-key")
        health = httpx.get(url.removesuffix("/v1") + "/healthz")
    assert "s3cret-key" not in str(wrong.value)
    assert ok.choices[0].message.content == "the answer is 42"  # type: ignore[attr-defined]
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_serve_past_the_run_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    rec = Recorder(delay=0.5)
    api = accord.serve.app([chain()], backend=rec.backend, store=tmp_path / "r.db", max_runs=1)
    with serving(api) as url:
        first = threading.Thread(target=_ask, args=(url,))
        first.start()
        _wait(lambda: rec.started)
        second = httpx.post(
            url + "/chat/completions",
            json={"model": "trio", "messages": [{"role": "user", "content": "y"}]},
        )
        with pytest.raises(openai.RateLimitError):
            _ask(url)
        first.join()
        third = _ask(url)  # the slot is free again
    assert second.status_code == 429
    assert second.headers["retry-after"] == "1"
    assert second.json()["error"]["code"] == "too_many_runs"
    assert third.choices[0].message.content == "the answer is 42"  # type: ignore[attr-defined]


def test_serve_a_body_over_the_limit_is_413_before_any_run(tmp_path: Path) -> None:
    rec = Recorder()
    api = accord.serve.app(
        [chain()], backend=rec.backend, store=tmp_path / "r.db", max_body_bytes=2000
    )
    with serving(api) as url:
        big = {"model": "trio", "messages": [{"role": "user", "content": "x" * 5000}]}
        declared = httpx.post(url + "/chat/completions", json=big)

        def chunks():  # type: ignore[no-untyped-def]
            yield b'{"model": "trio", "messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}]}'

        streamed = httpx.post(url + "/chat/completions", content=chunks())
    assert declared.status_code == 413 and streamed.status_code == 413
    assert "2000" in declared.json()["error"]["message"]
    assert rec.started == []


def test_serve_a_run_past_the_timeout_is_504_and_its_model_call_is_cancelled(
    tmp_path: Path,
) -> None:
    rec = Recorder(delay=5.0)
    db = tmp_path / "r.db"
    api = accord.serve.app([chain()], backend=rec.backend, store=db, timeout=0.3)
    with serving(api) as url:
        started = time.monotonic()
        reply = httpx.post(
            url + "/chat/completions",
            json={"model": "trio", "messages": [{"role": "user", "content": "y"}]},
        )
        took = time.monotonic() - started
    assert reply.status_code == 504 and took < 3
    assert "timeout" in reply.json()["error"]["message"]
    assert rec.cancelled == rec.started and len(rec.started) == 1
    assert open_store(db).get_run(reply.headers["x-accord-run-id"]).status == "cancelled"


def test_serve_a_streaming_client_that_goes_away_cancels_its_run_and_model_calls(
    tmp_path: Path,
) -> None:
    rec = Recorder(delay=0.4)
    db = tmp_path / "r.db"
    api = accord.serve.app([chain()], backend=rec.backend, store=db)
    with serving(api) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        stream = client.chat.completions.create(
            model="trio", messages=[{"role": "user", "content": "x"}], stream=True
        )
        first = next(iter(stream))  # the role chunk: the run is going
        run_id = (first.model_extra or {})["run_id"]
        _wait(lambda: rec.started)
        stream.close()  # the client goes away mid-run
        _wait(lambda: rec.cancelled)
        time.sleep(0.6)  # long enough for a further model call, had the run gone on
        status = httpx.get(f"{url}/runs/{run_id}").json()["status"]
    assert rec.cancelled == [f"{run_id}/a/0"]
    assert rec.finished == [] and len(rec.started) == 1  # no call ran on, none started after
    assert status == "cancelled"
    assert open_store(db).get_run(run_id).status == "cancelled"


def test_serve_a_non_streaming_client_that_goes_away_cancels_its_run(tmp_path: Path) -> None:
    rec = Recorder(delay=0.4)
    api = accord.serve.app([chain()], backend=rec.backend, store=tmp_path / "r.db")
    with serving(api) as url:

        async def go_away() -> None:
            async with httpx.AsyncClient() as client:
                request = client.post(
                    url + "/chat/completions",
                    json={"model": "trio", "messages": [{"role": "user", "content": "x"}]},
                )
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await request

        asyncio.run(go_away())
        _wait(lambda: rec.cancelled)
        time.sleep(0.6)
    assert len(rec.cancelled) == 1 and rec.finished == [] and len(rec.started) == 1


async def test_serve_health_needs_no_key_when_the_app_is_mounted_under_a_prefix(
    tmp_path: Path,
) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    served = accord.serve.app(
        [chain()], backend=Recorder().backend, store=tmp_path / "r.db", api_key="k"
    )
    outer = Starlette(routes=[Mount("/accord", served)])
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        health = await client.get("/accord/healthz")
        models = await client.get("/accord/v1/models")
        allowed = await client.get("/accord/v1/models", headers={"Authorization": "Bearer k"})
    assert health.status_code == 200
    assert models.status_code == 401 and allowed.status_code == 200
