"""Graph.run with a store, Graph.resume in process, ReplayBackend, settings and secret redaction."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path

import pytest
from _scenario import ACTIVATIONS, backend, build_graph, reply, transcript_facts

import accord
from accord.backends.base import Request
from accord.errors import ConfigError, NodeTimeoutError, ScriptExhaustedError
from accord.store import ReplayBackend, export_json, open_store
from accord.testing import FunctionBackend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backends"))
from fault_server import CANARY_KEY, FaultServer, Reply, completion  # noqa: E402


@pytest.mark.parametrize("durability", ["async", "sync"])
async def test_run_records_run_activations_calls_and_events(db: Path, durability: str) -> None:
    store = open_store(db)
    result = await build_graph().run("task", backend(), store=store, durability=durability)
    record = store.get_run(result.run_id)
    assert (record.status, record.graph, record.task) == ("completed", "scenario", "task")
    assert record.structure_hash == build_graph().structure_hash()
    assert record.usage == result.usage and record.activations == ACTIVATIONS
    activations = store.activations(result.run_id, calls=True)
    by_id = {a.message.id: a for a in activations}
    for m in result.transcript:
        stored = by_id[m.id]
        assert (stored.message.text, stored.message.payload) == (m.text, m.payload)
        assert stored.inputs == m.parents
    critic = by_id[f"{result.run_id}/critic/0"]
    [(request, response)] = critic.calls
    assert request.agent == "critic" and request.response_schema is not None
    assert response.text == reply(request)
    assert by_id[f"{result.run_id}/join/0"].calls == []
    kinds = [e["kind"] for e in store.events(result.run_id)]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("activation_finished") == ACTIVATIONS
    assert "token" not in kinds and "message" not in kinds


def test_run_with_durability_off_writes_nothing(db: Path) -> None:
    result = asyncio.run(build_graph().run("task", backend(), store=db, durability="off"))
    assert result.status == "completed"
    assert not db.exists()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def test_run_records_nothing_without_a_store_and_where_one_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ACCORD_STORE", raising=False)
    monkeypatch.delenv("ACCORD_DURABILITY", raising=False)
    await build_graph().run("task", backend())
    assert _names(tmp_path) == []  # the library writes no ./.accord by default
    monkeypatch.setenv("ACCORD_STORE", str(tmp_path / "env.db"))
    monkeypatch.setenv("ACCORD_DURABILITY", "sync")
    result = await build_graph().run("task", backend())
    assert open_store(tmp_path / "env.db").has_run(result.run_id)
    monkeypatch.delenv("ACCORD_STORE")
    async with accord.open_store(tmp_path / "configured.db") as store:
        accord.configure(store=store)
        try:
            result = await build_graph().run("task", backend())
            assert store.has_run(result.run_id)
        finally:
            accord.configure(store=None)
    result = await build_graph().run("task", backend())
    assert [n for n in _names(tmp_path) if n.endswith(".db")] == [
        "configured.db",
        "env.db",
    ]
    monkeypatch.setenv("ACCORD_DURABILITY", "sometimes")
    with pytest.raises(ConfigError, match="ACCORD_DURABILITY='sometimes'"):
        await build_graph().run("task", backend(), store=tmp_path / "x.db")


async def test_run_refuses_a_run_id_already_in_the_store(db: Path) -> None:
    await build_graph().run("task", backend(), run_id="same", store=db, durability="sync")
    with pytest.raises(ConfigError, match="already in the run store"):
        await build_graph().run("task", backend(), run_id="same", store=db, durability="sync")


async def test_run_inside_an_activation_is_not_recorded_separately(db: Path) -> None:
    inner = accord.Graph("inner")
    inner.add(accord.Agent("x"))
    outer = accord.Graph("outer")
    outer.add(accord.Agent("first"), inner)
    outer.connect("first", "inner")
    result = await outer.run("task", backend(), store=db, durability="sync")
    store = open_store(db)
    assert [r.run_id for r in store.list_runs()] == [result.run_id]
    # the subgraph's activations are part of the parent run, named by their path
    assert {a.node for a in store.activations(result.run_id)} == {"first", "inner", "inner/x"}


@pytest.mark.parametrize("durability", ["async", "sync"])
async def test_resume_after_a_failure_runs_only_what_is_missing(db: Path, durability: str) -> None:
    failing = True

    async def flaky(request: Request) -> str:
        if request.agent == "critic" and request.round == 1 and failing:
            raise NodeTimeoutError("slow", node="critic", round=1, timeout=1.0)
        return reply(request)

    graph = build_graph()
    with pytest.raises(NodeTimeoutError) as info:
        await graph.run("task", FunctionBackend(flaky), store=db, durability=durability)
    run_id = info.value.result.run_id
    assert open_store(db).get_run(run_id).status == "failed"
    failing = False
    second = FunctionBackend(flaky)
    result = await build_graph().resume(run_id, second, store=db)
    assert [(r.agent, r.round) for r in second.requests] == [
        ("critic", 1),
        ("reviser", 2),
        ("critic", 2),
        ("final", 0),
    ]
    uninterrupted = await build_graph().run("task", backend(), run_id=run_id, durability="off")
    assert transcript_facts(result.transcript) == transcript_facts(uninterrupted.transcript)
    assert result.usage == uninterrupted.usage
    assert [t.cached for t in result.timings].count(True) == 7
    record = open_store(db).get_run(run_id)
    assert (record.status, record.attempts, record.activations) == ("completed", 2, ACTIVATIONS)


async def test_resume_of_a_completed_run_makes_no_model_call(db: Path) -> None:
    first = await build_graph().run("task", backend(), store=db, durability="async")
    model = backend()
    again = await build_graph().resume(first.run_id, model, store=db)
    assert model.calls() == 0
    assert transcript_facts(again.transcript) == transcript_facts(first.transcript)


async def test_resume_with_a_different_graph_structure_is_refused(db: Path) -> None:
    first = await build_graph().run("task", backend(), store=db, durability="sync")
    with pytest.raises(ConfigError, match="structure") as info:
        await build_graph(extra=True).resume(first.run_id, backend(), store=db)
    assert "Resume the run with the graph that started it" in str(info.value)
    assert open_store(db).get_run(first.run_id).attempts == 1


async def test_resume_of_an_unknown_run_names_it(db: Path) -> None:
    open_store(db)
    with pytest.raises(ConfigError, match="no run 'nope'"):
        await build_graph().resume("nope", backend(), store=db)


async def test_replay_backend_reproduces_a_recorded_run_exactly(db: Path) -> None:
    recorded = await build_graph().run("task", backend(), store=db, durability="async")
    replay = ReplayBackend(recorded.run_id, store=db, strict=True)
    again = await build_graph().run("task", replay, run_id=recorded.run_id, durability="off")
    assert transcript_facts(again.transcript) == transcript_facts(recorded.transcript)
    assert again.usage == recorded.usage
    assert replay.calls() == recorded.usage.requests == 10


async def test_replay_backend_fails_on_a_call_it_did_not_record(db: Path) -> None:
    recorded = await build_graph().run("task", backend(), store=db, durability="sync")
    with pytest.raises(ScriptExhaustedError, match="agent 'extra' in round 0") as info:
        await build_graph(extra=True).run(
            "task", ReplayBackend(recorded.run_id, store=db), durability="off"
        )
    assert info.value.agent == "extra"


async def test_replay_backend_strict_rejects_a_changed_prompt(db: Path) -> None:
    recorded = await build_graph().run("task", backend(), store=db, durability="sync")
    with pytest.raises(ScriptExhaustedError, match="agent 'planner', round 0: the request differs"):
        await build_graph().run(
            "another task",
            ReplayBackend(recorded.run_id, store=db, strict=True),
            durability="off",
        )


def _store_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


async def test_store_never_holds_the_backends_key_but_keeps_the_task_verbatim(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    task = "use api_key: demo123 and Authorization: Bearer user-token-1"

    async with FaultServer(default=lambda request: Reply.json(completion("done"))) as server:
        from accord.backends.openai import OpenAIBackend

        model = OpenAIBackend("m", base_url=server.base_url, api_key=CANARY_KEY)
        graph = accord.Graph("leaky")
        graph.add(accord.Agent("a"), accord.Agent("b"))
        graph.connect("a", "b")
        result = await graph.run(task, model, store=db, durability="sync")
        assert result.status == "completed"
    assert all(r.headers.get("authorization") == f"Bearer {CANARY_KEY}" for r in server.requests)
    raw = _store_bytes(db)
    assert CANARY_KEY.encode() not in raw  # accord's own credentials are never recorded
    assert b"Bearer " + CANARY_KEY.encode() not in raw
    store = open_store(db)
    assert store.get_run(result.run_id).task == task  # what resume sends again, verbatim
    exported = json.dumps(export_json(store, result.run_id))
    assert "demo123" not in exported and "user-token-1" not in exported
    assert "[REDACTED]" in exported


async def test_store_rebuilds_growing_prompts_from_deltas(db: Path) -> None:
    model = backend()
    result = await build_graph().run("task", model, store=db, durability="sync")
    stored = [
        (request, response)
        for a in open_store(db).activations(result.run_id, calls=True)
        for request, response in a.calls
    ]
    assert len(stored) == len(model.requests) == 10
    assert {(r.agent, r.round): r for r, _ in stored} == {
        (r.agent, r.round): r for r in model.requests
    }
    reviser = next(r for r in model.requests if (r.agent, r.round) == ("reviser", 2))
    assert len(reviser.messages) == 5  # two earlier rounds (prompt, reply) and the new prompt
    with sqlite3.connect(db) as conn:
        (raw,) = conn.execute(
            "SELECT calls FROM activations WHERE node = 'reviser' AND round = 2"
        ).fetchone()
    [call] = json.loads(raw)
    assert call["request"]["base"] == ["reviser", 1, 0]
    assert len(call["request"]["messages"]) == 2  # its last reply and the new prompt


async def test_resume_says_which_payload_class_is_missing(db: Path) -> None:
    first = await build_graph().run("task", backend(), store=db, durability="sync")
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE activations SET message = json_set(message, '$.payload', json(?)) "
            "WHERE node = 'critic' AND round = 0",
            ('{"kind": "myapp.Score", "value": 3}',),
        )
    with pytest.raises(ConfigError, match="payload kind 'myapp.Score'.*Import the module"):
        await build_graph().resume(first.run_id, backend(), store=db)
    assert open_store(db).get_run(first.run_id).status != "running"  # the lease was given back


def test_configure_refuses_something_that_is_not_a_store() -> None:
    with pytest.raises(ConfigError, match="takes a path or a run store"):
        accord.configure(store=42)
