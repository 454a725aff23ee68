"""Ask a person before acting: a step pauses the run until someone approves, then acts.

The graph plans a clean-up (the ``*.tmp`` files of a folder), asks a person to approve it
(``ctx.ask(..., output=accord.Approval)``), and deletes the files only when approved. While it
waits, a step that does not depend on the answer (a size report) still runs. Run it, let it pause,
answer from the command line in another process (minutes or days later), and it finishes:

    accord run examples/approval.py:graph ./scratch --no-input
    accord runs list --waiting
    accord runs answer RUN_ID '{"approved": true}' --resume

On a terminal without ``--no-input``, ``accord run`` asks the question there instead. No model is
needed: every node is a plain Python step.
"""

from __future__ import annotations

from pathlib import Path

import accord
from accord.runtime import ActivationContext


class Cleanup(accord.Payload):
    """Files a clean-up would delete."""

    folder: str
    files: list[str]

    def as_text(self) -> str:
        return f"delete {len(self.files)} file(s) in {self.folder}: {', '.join(self.files)}"


@accord.step
def plan(task: str) -> Cleanup:
    folder = Path(task.strip())
    files = sorted(p.name for p in folder.glob("*.tmp")) if folder.is_dir() else []
    return Cleanup(folder=str(folder), files=files)


@accord.step
async def approve(ctx: ActivationContext, cleanup: Cleanup) -> str:
    if not cleanup.files:
        return "nothing to delete"
    decision = await ctx.ask(f"Approve: {cleanup.as_text()}?", output=accord.Approval)
    if not decision.approved:
        return f"not deleted: {decision.reason or 'not approved'}"
    for name in cleanup.files:
        (Path(cleanup.folder) / name).unlink(missing_ok=True)
    return f"deleted {len(cleanup.files)} file(s)"


@accord.step
def report(task: str) -> str:
    folder = Path(task.strip())
    size = sum(p.stat().st_size for p in folder.iterdir()) if folder.is_dir() else 0
    return f"{folder} holds {size} bytes"


def build() -> accord.Graph:
    g = accord.Graph("approval")
    g.add(plan, approve, report)
    g.connect("plan", "approve")
    g.set_entry("plan", "report")
    g.set_exit("approve", "report")
    return g


graph = build()
