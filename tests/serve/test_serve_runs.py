"""The runs API: start, read, follow (SSE, resumable), cancel, trace; finished runs outlive the
server."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
from _server import Recorder, chain, serving

import accord
import accord.serve


def _events(text: str) -> list[tuple[int, str, dict[str, object]]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return out


def _until_done(url: str, run_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 10
    while True:
        body: dict[str, object] = httpx.get(f"{url}/runs/{run_id}").json()
        if body["status"] != "running" or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_serve_runs_start_then_read_status_output_and_usage(tmp_path: Path) -> None:
    rec = Recorder(delay=0.05, answer="done well")
    api = accord.serve.app([chain()], backend=rec.backend, store=tmp_path / "r.db")
    with serving(api) as url:
        started = httpx.post(f"{url}/runs", json={"model": "trio", "task": "long work"})
        run_id = started.json()["id"]
        running = httpx.get(f"{url}/runs/{run_id}").json()
        body = _until_done(url, run_id)
        missing = httpx.get(f"{url}/runs/nope")
    assert started.status_code == 202 and started.headers["location"] == f"/v1/runs/{run_id}"
    assert running["status"] == "running" and running["output"] is None
    assert body["status"] == "completed" and body["output"] == "done well"
    assert body["usage"]["total_tokens"] > 0  # type: ignore[index]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "run_not_found"


def test_serve_run_events_stream_every_event_and_resume_after_last_event_id(tmp_path: Path) -> None:
    rec = Recorder(delay=0.05)
    api = accord.serve.app([chain()], backend=rec.backend, store=tmp_path / "r.db")
    with serving(api) as url:
        run_id = httpx.post(f"{url}/runs", json={"model": "trio", "task": "t"}).json()["id"]
        with httpx.stream("GET", f"{url}/runs/{run_id}/events") as live:  # follows until the end
            full = _events(live.read().decode())
        cut = full[5][0]
        resumed = _events(
            httpx.get(f"{url}/runs/{run_id}/events", headers={"Last-Event-ID": str(cut)}).text
        )
    kinds = [kind for _, kind, _ in full]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("activation_started") == 3 and "token" in kinds and "message" in kinds
    assert [n for n, _, _ in full] == list(range(1, len(full) + 1))
    assert resumed == full[6:]  # everything after event 6: nothing lost, nothing repeated


def test_serve_run_cancel_stops_it_and_its_model_call(tmp_path: Path) -> None:
    rec = Recorder(delay=5.0)
    api = accord.serve.app([chain()], backend=rec.backend, store=tmp_path / "r.db")
    with serving(api) as url:
        run_id = httpx.post(f"{url}/runs", json={"model": "trio", "task": "t"}).json()["id"]
        deadline = time.monotonic() + 5
        while not rec.started and time.monotonic() < deadline:
            time.sleep(0.02)
        cancelled = httpx.post(f"{url}/runs/{run_id}/cancel")
        again = httpx.post(f"{url}/runs/{run_id}/cancel")
        body = httpx.get(f"{url}/runs/{run_id}").json()
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert again.status_code == 409
    assert body["status"] == "cancelled"
    assert rec.cancelled == rec.started == [f"{run_id}/a/0"]


def test_serve_finished_runs_outlive_the_server(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    rec = Recorder(answer="kept")
    with serving(accord.serve.app([chain()], backend=rec.backend, store=db)) as url:
        reply = httpx.post(
            f"{url}/chat/completions",
            json={"model": "trio", "messages": [{"role": "user", "content": "x"}]},
        )
        run_id = reply.headers["x-accord-run-id"]
    with serving(accord.serve.app([chain()], backend=rec.backend, store=db)) as url:  # a restart
        body = httpx.get(f"{url}/runs/{run_id}").json()
        events = _events(httpx.get(f"{url}/runs/{run_id}/events").text)
        after = _events(
            httpx.get(f"{url}/runs/{run_id}/events", headers={"Last-Event-ID": "2"}).text
        )
        cancel = httpx.post(f"{url}/runs/{run_id}/cancel")
    assert body["status"] == "completed" and body["output"] == "kept"
    assert [k for _, k, _ in events][0] == "run_started" and events[-1][1] == "run_finished"
    assert after == events[2:]
    assert cancel.status_code == 409


def test_serve_run_trace_is_the_runs_html_page(tmp_path: Path) -> None:
    rec = Recorder()
    with serving(accord.serve.app([chain()], backend=rec.backend, store=tmp_path / "r.db")) as url:
        run_id = httpx.post(f"{url}/runs", json={"model": "trio", "task": "t"}).json()["id"]
        _until_done(url, run_id)
        page = httpx.get(f"{url}/runs/{run_id}/trace")
        missing = httpx.get(f"{url}/runs/nope/trace")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert run_id in page.text and "default-src 'none'" in page.text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page.text)
    assert missing.status_code == 404


def test_serve_runs_rejects_a_bad_body_with_a_clear_message(tmp_path: Path) -> None:
    with serving(
        accord.serve.app([chain()], backend=Recorder().backend, store=tmp_path / "r.db")
    ) as url:
        no_task = httpx.post(f"{url}/runs", json={"model": "trio"})
        not_json = httpx.post(f"{url}/runs", content=b"{nope")
        from_messages = httpx.post(
            f"{url}/runs", json={"model": "trio", "messages": [{"role": "user", "content": "hi"}]}
        )
    assert no_task.status_code == 400 and "task" in no_task.json()["error"]["message"]
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]["message"]
    assert from_messages.status_code == 202


def _approval_graph() -> accord.Graph:
    @accord.step
    def draft(task: str) -> str:
        return f"plan for {task}"

    @accord.step
    def act(decision: accord.Approval) -> str:
        return "done" if decision.approved else f"refused: {decision.reason}"

    g = accord.Graph("approval")
    g.add(draft, accord.Human("review", question="Approve {{ last }}?", output=accord.Approval))
    g.add(act)
    g.connect("draft", "review")
    g.connect("review", "act")
    return g


def test_serve_runs_answers_continue_a_waiting_run_and_refuse_a_wrong_answer(
    tmp_path: Path,
) -> None:
    api = accord.serve.app([_approval_graph()], store=tmp_path / "r.db")
    with serving(api) as url:
        run_id = httpx.post(f"{url}/runs", json={"model": "approval", "task": "x"}).json()["id"]
        waiting = _until_done(url, run_id)
        [question] = waiting["questions"]  # type: ignore[misc]
        wrong = httpx.post(
            f"{url}/runs/{run_id}/answers", json={"answers": {question["id"]: {"ok": "yes"}}}
        )
        still = httpx.get(f"{url}/runs/{run_id}").json()
        right = httpx.post(
            f"{url}/runs/{run_id}/answers", json={"answers": {question["id"]: {"approved": True}}}
        )
        done = _until_done(url, run_id)
        again = httpx.post(
            f"{url}/runs/{run_id}/answers", json={"answers": {question["id"]: {"approved": True}}}
        )
    assert waiting["status"] == "waiting" and question["question"] == "Approve plan for x?"
    assert question["answer_schema"]["properties"]["approved"]["type"] == "boolean"
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_answer"
    assert still["status"] == "waiting"
    assert right.status_code == 202 and right.json()["status"] == "running"
    assert done["status"] == "completed" and done["output"] == "done"
    assert again.status_code == 409  # no longer waiting
