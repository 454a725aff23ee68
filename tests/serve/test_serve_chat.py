"""POST /v1/chat/completions and GET /v1/models, called with the real openai client (sync, async,
streaming) against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from _server import Recorder, chain, serving

import accord
import accord.serve
from accord.store import open_store


def _client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0)


def test_serve_models_lists_every_served_graph(tmp_path: Path) -> None:
    rec = Recorder()
    api = accord.serve.app(
        [chain("trio"), chain("duo", ("a", "c"))], backend=rec.backend, store=tmp_path / "r.db"
    )
    with serving(api) as url:
        names = [m.id for m in _client(url).models.list()]
    assert names == ["trio", "duo"]


def test_serve_chat_completion_answers_with_the_graph_output_and_its_whole_usage(
    tmp_path: Path,
) -> None:
    rec = Recorder(answer="forty-two")
    db = tmp_path / "r.db"
    api = accord.serve.app([chain()], backend=rec.backend, store=db)
    with serving(api) as url:
        raw = _client(url).chat.completions.with_raw_response.create(
            model="trio", messages=[{"role": "user", "content": "What is 6 x 7?"}]
        )
    reply = raw.parse()
    run_id = raw.headers["x-accord-run-id"]
    assert reply.choices[0].message.content == "forty-two"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "trio"
    assert (reply.model_extra or {})["run_id"] == run_id
    record = open_store(db).get_run(run_id)
    assert record.status == "completed" and record.task == "What is 6 x 7?"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == record.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens == record.usage.completion_tokens > 0
    assert len(rec.finished) == 3  # one call per agent: the usage is the whole run's


def test_serve_chat_completion_puts_the_conversation_before_the_last_user_message(
    tmp_path: Path,
) -> None:
    rec = Recorder()
    api = accord.serve.app([chain()], backend=rec.backend, store=tmp_path / "r.db")
    with serving(api) as url:
        _client(url).chat.completions.create(
            model="trio",
            messages=[
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "first answer"},
                {"role": "user", "content": [{"type": "text", "text": "second question"}]},
            ],
        )
    prompt = "\n".join(m.content for m in rec.backend.requests[0].messages)
    assert (
        prompt.index("first question")
        < prompt.index("first answer")
        < prompt.index("second question")
    )
    assert "be brief" in prompt


async def test_serve_chat_completion_with_the_async_client(tmp_path: Path) -> None:
    rec = Recorder(answer="async ok")
    api = accord.serve.app([chain()], backend=rec.backend, store=tmp_path / "r.db")
    with serving(api) as url:
        client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
        reply = await client.chat.completions.create(
            model="trio", messages=[{"role": "user", "content": "go"}]
        )
        await client.close()
    assert reply.choices[0].message.content == "async ok"


def test_serve_chat_stream_sends_the_exit_node_tokens_then_a_usage_chunk(tmp_path: Path) -> None:
    rec = Recorder(answer="one two three four")
    db = tmp_path / "r.db"
    api = accord.serve.app([chain()], backend=rec.backend, store=db)
    with serving(api) as url:
        chunks = list(
            _client(url).chat.completions.create(
                model="trio", messages=[{"role": "user", "content": "count"}], stream=True
            )
        )
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert texts == ["one", " two", " three", " four"]  # token by token, only the exit node's
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    run_id = (last.model_extra or {})["run_id"]
    assert {(c.model_extra or {})["run_id"] for c in chunks} == {run_id}
    assert last.usage.total_tokens == open_store(db).get_run(run_id).usage.total_tokens


async def test_serve_chat_stream_with_the_async_client_sends_the_answer_of_a_looping_exit(
    tmp_path: Path,
) -> None:
    drafts = iter(["draft 1", "draft 2"])
    verdicts = iter(['{"approved": false, "issues": ["short"]}', '{"approved": true}'])

    def model(request: accord.backends.base.Request) -> str:  # type: ignore[name-defined]
        return next(drafts) if request.agent == "solver" else next(verdicts)

    from accord.testing import FunctionBackend

    graph = accord.critique_revise(accord.Solver("solver"), accord.Critic("critic"), max_rounds=3)
    api = accord.serve.app(
        {"review": graph}, backend=FunctionBackend(model), store=tmp_path / "r.db"
    )
    with serving(api) as url:
        client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
        stream = await client.chat.completions.create(
            model="review", messages=[{"role": "user", "content": "write"}], stream=True
        )
        texts = [
            c.choices[0].delta.content
            async for c in stream
            if c.choices and c.choices[0].delta.content
        ]
        await client.close()
    assert "".join(texts).endswith("draft 2") and "draft 1" not in "".join(texts)


def test_serve_chat_response_format_returns_the_typed_exit_payload(tmp_path: Path) -> None:
    from accord.testing import FunctionBackend

    graph = accord.Graph("typed")
    graph.add(accord.Agent("a"), accord.Agent("c", output=accord.Answer))
    graph.connect("a", "c")
    backend = FunctionBackend(
        lambda r: '{"answer": "42", "reasoning": "6 x 7"}' if r.agent == "c" else "hm"
    )
    api = accord.serve.app([graph, chain()], backend=backend, store=tmp_path / "r.db")
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    with serving(api) as url:
        client = _client(url)
        reply = client.chat.completions.create(
            model="typed",
            messages=[{"role": "user", "content": "6 x 7?"}],
            response_format=fmt,  # type: ignore[arg-type]
        )
        with pytest.raises(openai.BadRequestError) as text_graph:
            client.chat.completions.create(
                model="trio",
                messages=[{"role": "user", "content": "x"}],
                response_format=fmt,  # type: ignore[arg-type]
            )
        wrong = {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"properties": {"score": {}}}},
        }
        with pytest.raises(openai.BadRequestError) as missing:
            client.chat.completions.create(
                model="typed",
                messages=[{"role": "user", "content": "x"}],
                response_format=wrong,  # type: ignore[arg-type]
            )
    assert json.loads(reply.choices[0].message.content or "") == {
        "answer": "42",
        "reasoning": "6 x 7",
    }
    assert "answers in text" in str(text_graph.value)
    assert "score" in str(missing.value) and "Answer" in str(missing.value)


def test_serve_chat_unknown_model_is_404_naming_the_served_graphs(tmp_path: Path) -> None:
    api = accord.serve.app([chain()], backend=Recorder().backend, store=tmp_path / "r.db")
    with serving(api) as url, pytest.raises(openai.NotFoundError) as info:
        _client(url).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    assert "gpt-4o" in str(info.value) and "trio" in str(info.value)


def test_serve_chat_without_a_user_message_is_400(tmp_path: Path) -> None:
    api = accord.serve.app([chain()], backend=Recorder().backend, store=tmp_path / "r.db")
    with serving(api) as url, pytest.raises(openai.BadRequestError) as info:
        _client(url).chat.completions.create(
            model="trio", messages=[{"role": "system", "content": "x"}]
        )
    assert "user message" in str(info.value)


def test_serve_chat_run_failure_is_502_with_accords_message(tmp_path: Path) -> None:
    from accord.errors import ProviderUnavailableError
    from accord.testing import ScriptedBackend

    boom = ProviderUnavailableError("upstream is down", status_code=503, provider="fake")
    api = accord.serve.app(
        [chain()], backend=ScriptedBackend({"*": [boom]}), store=tmp_path / "r.db"
    )
    with serving(api) as url, pytest.raises(openai.APIStatusError) as info:
        _client(url).chat.completions.create(
            model="trio", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 502
    assert "ProviderUnavailableError" in str(info.value) and "upstream is down" in str(info.value)
