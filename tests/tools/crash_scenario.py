"""A run whose tools can SIGKILL their own process, for the exactly-once crash tests.

    python crash_scenario.py DB DIR run|resume [idempotent]

Files in DIR steer it: ``kill_in_send`` makes ``send`` kill the process right after its side
effect (one line in ``sent.txt``), before the activation is committed; ``kill_in_check`` makes
``check`` kill it (after ``send`` returned). Each kill happens once. On ``resume`` the tool
results are printed as JSON lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import accord
from accord.testing import ScriptedBackend, tool_call
from accord.tools import Tool

DB, DIR, MODE = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
IDEMPOTENT = len(sys.argv) > 4


def _kill_once(flag: str) -> None:
    marker = DIR / f"{flag}.done"
    if (DIR / flag).exists() and not marker.exists():
        marker.write_text("x")
        os.kill(os.getpid(), signal.SIGKILL)


def send(to: str) -> str:
    """Send a message (a side effect)."""
    with open(DIR / "sent.txt", "a", encoding="utf-8") as handle:
        handle.write(to + "\n")
    _kill_once("kill_in_send")
    return f"sent to {to}"


def check() -> str:
    """Check something."""
    _kill_once("kill_in_check")
    return "fine"


def graph() -> accord.Graph:
    tools = [Tool(send, side_effects=True, idempotent=IDEMPOTENT), Tool(check)]
    return accord.Graph("clerk").add(accord.Agent("clerk", tools=tools))


async def main() -> None:
    backend = ScriptedBackend({"clerk": [tool_call("send", to="bob"), tool_call("check"), "done"]})
    seen: list[object] = []
    if MODE == "run":
        result = await graph().run(
            "task", backend, store=DB, durability="sync", run_id="r1", on_event=seen.append
        )
    else:
        result = await graph().resume("r1", backend, store=DB, on_event=seen.append)
    for event in seen:
        if getattr(event, "kind", "") == "tool_result":
            fields = {k: getattr(event, k) for k in ("tool", "error", "cached", "result")}
            print(json.dumps(fields))
    print(json.dumps({"output": result.text}))


asyncio.run(main())
