"""The trace viewer: a self-contained page, checked as text and rendered in headless Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _scenario import backend, build_graph

import accord
from accord.store import SQLiteStore, trace_html, write_trace
from accord.store._trace import layout
from accord.testing import FunctionBackend

ARTIFACTS = Path(__file__).resolve().parents[1] / "_artifacts"
CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser")) if p), None)


def _recorded(db: Path) -> tuple[SQLiteStore, accord.RunResult]:
    store = SQLiteStore(db)
    result = asyncio.run(build_graph().run("task", backend(), store=store, durability="sync"))
    return store, result


def test_trace_page_is_self_contained(db: Path) -> None:
    store, result = _recorded(db)
    page = trace_html(store, result.run_id)
    assert "default-src 'none'" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page
    assert result.run_id in page


def test_trace_page_keeps_hostile_text_inside_its_data(db: Path) -> None:
    evil = "</script><script>document.title='pwned'</script><img src=x onerror=alert(1)>"
    graph = accord.Graph("evil")
    graph.add(accord.Agent("a"))
    store = SQLiteStore(db)
    result = asyncio.run(
        graph.run("task", FunctionBackend(lambda r: evil), store=store, durability="sync")
    )
    page = trace_html(store, result.run_id)
    assert "</script><script>document.title" not in page
    assert page.count("</script>") == 2  # the data element and the viewer's script


def test_trace_layout_puts_each_node_after_its_forward_predecessors() -> None:
    g = build_graph()
    topology = json.loads(g._drawing(g._compile())[1])
    placed = layout(topology)
    assert placed["planner"][0] == 0
    assert placed["a"][0] == placed["b"][0] == 1
    assert placed["join"][0] == 2 and placed["reviser"][0] == 3 and placed["critic"][0] == 4
    assert placed["a"][1] != placed["b"][1]


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_trace_page_renders_lanes_and_messages_in_chromium(db: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    store, result = _recorded(db)
    page = write_trace(store, result.run_id, tmp_path / "trace.html")
    ARTIFACTS.mkdir(exist_ok=True)
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=2000",
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60, env=env
    ).stdout
    assert 'data-rendered="true"' in dom, dom[-2000:]
    lanes = re.findall(r'class="lane" data-agent="([^"]+)"', dom)
    assert lanes == ["planner", "a", "b", "join", "reviser", "critic", "final"]
    messages = re.findall(r'class="message" data-id="([^"]+)"', dom)
    assert messages == [m.id for m in result.transcript]
    assert len(re.findall(r'class="bar', dom)) == len(result.transcript)
    assert dom.count('class="node ran"') == 7
    assert "critic round 2" in dom.replace("</span>", "")
    shot = ARTIFACTS / "trace.png"
    shot.unlink(missing_ok=True)
    subprocess.run(
        [*flags, "--window-size=1280,1400", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=60,
        env=env,
    )
    assert shot.exists() and shot.stat().st_size > 10_000
