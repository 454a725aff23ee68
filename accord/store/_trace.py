"""The trace viewer: one self-contained HTML page for a stored run.

The page (``trace.html`` next to this module, with inline CSS and JavaScript, no network access:
its Content-Security-Policy forbids any fetch) draws the graph with the nodes that ran highlighted,
a timeline with one lane per agent (each activation's start, duration, tokens and cost), every
message's text in an expandable block, and the run's usage totals. The run's data is embedded as
JSON in a ``<script type="application/json">`` element, escaped so that no text from a model can
close the element; the script inserts every text with ``textContent``, never as HTML. Texts are
shown with anything that looks like a secret redacted and terminal control sequences removed.

Caveat: the graph layout is computed here (layers along forward edges from the entries), not by a
layout engine, so very wide graphs get long rows.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from accord._terminal import plain
from accord.store._base import RunStore
from accord.store._codec import clean_text, redact
from accord.store._views import load_view

__all__ = ["trace_html", "write_trace", "layout"]

_PLACEHOLDER = "/*__ACCORD_TRACE_DATA__*/null"


def layout(topology: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(layer, row) of each node: layers follow forward edges from the entries."""
    names = [n["name"] for n in topology.get("nodes", [])]
    forward: dict[str, list[str]] = {n: [] for n in names}
    for e in topology.get("edges", []):
        if not e.get("back") and e["src"] in forward:
            forward[e["src"]].append(e["dst"])
    layer = {n: 0 for n in names}
    indegree = {n: 0 for n in names}
    for targets in forward.values():
        for t in targets:
            if t in indegree:
                indegree[t] += 1
    ready = [n for n in names if indegree[n] == 0]
    while ready:
        n = ready.pop(0)
        for t in forward[n]:
            if t not in layer:
                continue
            layer[t] = max(layer[t], layer[n] + 1)
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    rows: dict[int, int] = {}
    placed: dict[str, tuple[int, int]] = {}
    for n in names:
        row = rows.get(layer[n], 0)
        rows[layer[n]] = row + 1
        placed[n] = (layer[n], row)
    return placed


def _data(store: RunStore, run_id: str) -> dict[str, Any]:
    view = load_view(store, run_id)
    r = view.record
    t0 = min([r.started_at, *(a.started_at for a in view.activations)])
    ran: dict[str, int] = {}
    for a in view.activations:
        ran[a.node] = ran.get(a.node, 0) + 1
    positions = layout(r.topology)
    return {
        "run": {
            "run_id": r.run_id,
            "graph": r.graph,
            "task": r.task,
            "status": r.status,
            "stop_reason": r.stop_reason,
            "started_at": r.started_at,
            "duration_s": r.duration_s,
            "attempts": r.attempts,
            "usage": r.usage.model_dump(mode="json"),
        },
        "graph": {
            "nodes": [
                {**n, "layer": positions[n["name"]][0], "row": positions[n["name"]][1]}
                for n in r.topology.get("nodes", [])
            ],
            "edges": r.topology.get("edges", []),
            "entries": r.topology.get("entries", []),
            "exits": r.topology.get("exits", []),
        },
        "ran": ran,
        "activations": [
            {
                "node": a.node,
                "round": a.round,
                "start": a.started_at - t0,
                "duration": a.duration_s,
                "attempt": a.attempt,
                "prompt_tokens": a.message.usage.prompt_tokens,
                "completion_tokens": a.message.usage.completion_tokens,
                "cost": a.message.usage.cost,
                "requests": a.message.usage.requests,
            }
            for a in view.activations
        ],
        "messages": [
            {
                "id": m.id,
                "sender": m.sender,
                "round": m.round,
                "text": m.text,
                "payload": m.payload.kind if m.payload is not None else None,
                "parents": list(m.parents),
            }
            for m in view.transcript
        ],
        "usage_by_agent": {k: v.model_dump(mode="json") for k, v in view.usage_by_agent.items()},
        "tools": [
            {
                "node": e.get("node"),
                "round": e.get("round"),
                "tool": e.get("tool"),
                "error": e.get("error"),
                "cached": e.get("cached", False),
                "start": e["at"] - t0,
                "duration": e.get("duration_s", 0.0),
            }
            for e in store.events(run_id)
            if e.get("kind") == "tool_result"
        ],
    }


def _shown(value: Any) -> Any:
    """Every string of ``value`` as the page shows it: secrets redacted, control sequences and
    lone surrogates removed."""
    if isinstance(value, str):
        return plain(clean_text(redact(value)))
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_shown(v) for v in value]
    return value


def _embed(data: dict[str, Any]) -> str:
    text = json.dumps(_shown(data), ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def trace_html(store: RunStore, run_id: str) -> str:
    """The trace page of run ``run_id`` as one HTML string (raises ConfigError when unknown)."""
    template = resources.files("accord.store").joinpath("trace.html").read_text("utf-8")
    return template.replace(_PLACEHOLDER, _embed(_data(store, run_id)))


def write_trace(store: RunStore, run_id: str, path: str | Path) -> Path:
    """Write the trace page of run ``run_id`` to ``path``; returns the path."""
    out = Path(path)
    out.write_text(trace_html(store, run_id), encoding="utf-8")
    return out
