"""One task of a batch: run it, resume it, or read how it ended, and its result.

:func:`execute` is what the asyncio engine and every Ray worker do for one task. With a store it
looks the task's run up first: no run yet, it starts one (``graph.run(run_id=...)``); a run that
was interrupted (a killed process, a dead worker, Ctrl-C) or that completed but whose result was
not delivered, it resumes (``graph.resume``: finished activations are not run again, a completed
run returns its recorded result without a model call); a failed run is reported as failed
unless ``retry_failed``, which resumes it too.

Caveat: a run whose lease another live process holds (the same batch started twice at once)
comes back failed with ``RunBusyError``; run it again once the other process has finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accord.batch._tasks import BatchTask
from accord.messages import Usage

__all__ = ["BatchResult", "execute", "answer_of"]


@dataclass(frozen=True, slots=True)
class BatchResult:
    """How one task of a batch ended."""

    id: str
    task: str
    run_id: str
    status: str
    """completed, stopped (a termination condition fired) or failed."""
    output: str = ""
    """The answer (an ``Answer``/``Solution`` payload's answer, else the output's text)."""
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    duration_s: float = 0.0
    resumed: bool = False
    """Whether the task's run was found in the store and resumed (or read) rather than started."""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def to_json(self) -> dict[str, Any]:
        """The result as one line of a results file."""
        data: dict[str, Any] = {
            "id": self.id,
            "run_id": self.run_id,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "usage": {
                **self.usage.model_dump(mode="json"),
                "total_tokens": self.usage.total_tokens,
            },
            "duration_s": round(self.duration_s, 6),
            "resumed": self.resumed,
            "task": self.task,
        }
        if self.meta:
            data["meta"] = self.meta
        return data


def answer_of(result: Any) -> str:
    """A run result's answer: an answer-bearing payload's ``answer``, else the output's text."""
    out = result.output
    if out is None:
        return ""
    answer = getattr(out.payload, "answer", None)
    return str(answer) if isinstance(answer, str) and answer else str(out.text)


def _failed(t: BatchTask, run_id: str, exc: BaseException, resumed: bool) -> BatchResult:
    partial = getattr(exc, "result", None)
    usage = getattr(partial, "usage", None)
    return BatchResult(
        id=t.id,
        task=t.task,
        run_id=run_id,
        status="failed",
        error=f"{type(exc).__name__}: {exc}",
        usage=usage if isinstance(usage, Usage) else Usage(),
        duration_s=float(getattr(partial, "duration_s", 0.0) or 0.0),
        resumed=resumed,
        meta=t.meta,
    )


async def execute(
    graph: Any,
    t: BatchTask,
    run_id: str,
    backend: Any,
    store: Any,
    *,
    retry_failed: bool = False,
) -> BatchResult:
    """Run (or resume, or read) task ``t`` as run ``run_id``; never raises for a failed run."""
    options: dict[str, Any] = {} if t.max_steps is None else {"max_steps": t.max_steps}
    resumed = False
    try:
        if store is None:
            result = await graph.run(t.task, backend, run_id=run_id, **options)
        elif not store.has_run(run_id):
            result = await graph.run(t.task, backend, run_id=run_id, store=store, **options)
        else:
            resumed = True
            record = store.get_run(run_id)
            if record.status == "failed" and not retry_failed:
                return BatchResult(
                    id=t.id,
                    task=t.task,
                    run_id=run_id,
                    status="failed",
                    error=record.stop_reason,
                    usage=record.usage,
                    duration_s=record.duration_s or 0.0,
                    resumed=True,
                    meta=t.meta,
                )
            result = await graph.resume(run_id, backend, store=store, **options)
    except Exception as exc:  # a failed run is a result of the batch, not an error of it
        return _failed(t, run_id, exc, resumed)
    return BatchResult(
        id=t.id,
        task=t.task,
        run_id=run_id,
        status=result.status,
        output=answer_of(result),
        error=result.stop_reason if result.status == "failed" else None,
        usage=result.usage,
        duration_s=result.duration_s,
        resumed=resumed,
        meta=t.meta,
    )
