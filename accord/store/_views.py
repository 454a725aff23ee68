"""Read-side views of a stored run: its transcript, usage per agent, and a JSON export.

The transcript is rebuilt from the stored messages in the scheduler's causal order (depth in the
message DAG, then node order, then round), so it equals ``RunResult.transcript`` of the run.
Used by the ``accord runs`` commands and the trace viewer.

Caveat: a crashed run's view holds only what was stored; the activations in flight are missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accord.messages import Message, Usage
from accord.store._base import ActivationRecord, RunRecord, RunStore
from accord.store._codec import clean_text, redact

__all__ = ["RunView", "load_view", "transcript_of", "export_json"]


@dataclass(frozen=True, slots=True)
class RunView:
    """A stored run with its activations, in the forms the commands show."""

    record: RunRecord
    activations: list[ActivationRecord]
    transcript: list[Message]
    usage_by_agent: dict[str, Usage]


def transcript_of(messages: list[Message], order: list[str]) -> list[Message]:
    """``messages`` in causal order, as ``RunResult.transcript`` orders them."""
    index = {name: i for i, name in enumerate(order)}
    by_id = {m.id: m for m in messages}
    depth: dict[str, int] = {}

    def depth_of(mid: str) -> int:
        stack = [mid]
        while stack:
            top = stack[-1]
            if top in depth:
                stack.pop()
                continue
            m = by_id.get(top)
            if m is None:  # the task message, or a message that was not stored
                depth[top] = 0
                stack.pop()
                continue
            missing = [p for p in m.parents if p not in depth]
            if missing:
                stack.extend(missing)
                continue
            depth[top] = 1 + max((depth[p] for p in m.parents), default=0)
            stack.pop()
        return depth[mid]

    return sorted(
        messages, key=lambda m: (depth_of(m.id), index.get(m.sender, len(index)), m.round)
    )


def load_view(store: RunStore, run_id: str, *, calls: bool = False) -> RunView:
    """The stored run ``run_id`` (raises ConfigError when unknown)."""
    record = store.get_run(run_id)
    activations = store.activations(run_id, calls=calls)
    order = [n["name"] for n in record.topology.get("nodes", [])]
    transcript = transcript_of([a.message for a in activations], order)
    usage: dict[str, Usage] = {}
    for m in transcript:
        usage[m.sender] = usage.get(m.sender, Usage()) + m.usage
    return RunView(record, activations, transcript, usage)


def _usage(u: Usage) -> dict[str, Any]:
    return u.model_dump(mode="json")


def _exported(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(redact(value))
    if isinstance(value, dict):
        return {k: _exported(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exported(v) for v in value]
    return value


def export_json(store: RunStore, run_id: str) -> dict[str, Any]:
    """Everything stored about a run as plain JSON data, with anything that looks like a secret
    (``sk-...``, ``Authorization: ...``, ``api_key=...``, ``user:pass@`` in a URL) redacted.

    Payloads whose class this process does not define are exported with their stored kind and
    fields."""
    view = load_view(store, run_id, calls=True)
    r = view.record
    data: dict[str, Any] = _exported(
        {
            "run": {
                "run_id": r.run_id,
                "graph": r.graph,
                "structure_hash": r.structure_hash,
                "graph_source": r.graph_source,
                "task": r.task,
                "status": r.status,
                "stop_reason": r.stop_reason,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "duration_s": r.duration_s,
                "usage": _usage(r.usage),
                "max_steps": r.max_steps,
                "attempts": r.attempts,
                "topology": r.topology,
            },
            "usage_by_agent": {k: _usage(v) for k, v in view.usage_by_agent.items()},
            "transcript": [m.model_dump(mode="json") for m in view.transcript],
            "activations": [
                {
                    "node": a.node,
                    "round": a.round,
                    "inputs": list(a.inputs),
                    "message_id": a.message.id,
                    "started_at": a.started_at,
                    "duration_s": a.duration_s,
                    "attempt": a.attempt,
                    "calls": [
                        {
                            "request": req.model_dump(mode="json"),
                            "response": resp.model_dump(mode="json"),
                        }
                        for req, resp in a.calls
                    ],
                }
                for a in view.activations
            ],
            "events": store.events(run_id),
        }
    )
    return data
