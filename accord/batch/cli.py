"""``accord batch``: run a graph over a JSONL file of tasks, resumably, here or on Ray.

``accord batch FILE.py:graph|PATTERN tasks.jsonl --out results.jsonl`` runs every task (one JSON
string or object per line: ``{"id": "q1", "task": "...", "max_steps": 20, "meta": {...}}``),
``--concurrency`` at a time, with a progress bar on standard error, and appends one JSON line per
finished task to ``--out`` (flushed as each run ends). Runs are recorded in the run store
(``--store``, default ``$ACCORD_STORE`` or ``./.accord/runs.db``) under ids derived from the batch
id, so running the same command again skips the tasks ``--out`` already holds, resumes the runs
that were interrupted and, with ``--retry-failed``, retries the failed ones (their old lines are
dropped from ``--out``). ``--ray`` runs the tasks on a local Ray instance, or on a
cluster (``$RAY_ADDRESS``, Ray's own variable, or ``--ray-address ADDRESS``).

Exit codes: 0 every task completed or stopped, 1 some failed, 2 usage errors, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import typer

from accord.errors import AccordError, ConfigError, UsageError

__all__ = ["register", "batch_command", "read_done"]


def cli_graph(target: str, options: dict[str, Any]) -> tuple[Any, Any]:
    """The graph and backend the command's options describe (called once per Ray worker too)."""
    from accord.cli import _needs_model, build_pattern, load_graph, resolve_model

    from_file = target.endswith(".py") or ".py:" in target
    if from_file:
        graph = load_graph(target)
    else:
        graph = build_pattern(target, options.get("agents"), options.get("rounds"))
    graph.validate()
    model, base_url = options.get("model"), options.get("base_url")
    needs = model or base_url or not from_file or _needs_model(graph)
    return graph, resolve_model(model, base_url) if needs else None


def read_done(out: Path, batch_id: str, run_ids: dict[str, str], retry_failed: bool) -> set[str]:
    """Ids of the tasks ``out`` already holds a result for; rewrites ``out`` without the lines
    that will be written again (failed ones with ``retry_failed``, a line cut short by a kill).

    Raises:
        ConfigError: ``out`` holds results of another batch, or cannot be read or written.
    """
    if not out.exists():
        return set()
    try:
        lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the results file {str(out)!r}: {exc}") from exc
    kept: list[str] = []
    done: set[str] = set()
    for n, line in enumerate(lines, start=1):
        try:
            data = json.loads(line)
            task_id, run_id = str(data["id"]), str(data["run_id"])
        except (ValueError, KeyError, TypeError):
            if n == len(lines):  # the last line, cut short when the batch was killed
                continue
            raise ConfigError(
                f"{out} line {n} is not a result of accord batch. Give another --out."
            ) from None
        if run_ids.get(task_id) != run_id:
            raise ConfigError(
                f"{out} holds results of another batch (line {n}: task {task_id!r}, run "
                f"{run_id!r}; this batch is {batch_id!r}). Give another --out, or delete it."
            )
        if task_id in done or (retry_failed and data.get("status") == "failed"):
            continue
        done.add(task_id)
        kept.append(line if line.endswith("\n") else line + "\n")
    if len(kept) != len(lines):
        tmp = out.with_name(out.name + ".tmp")
        try:
            tmp.write_text("".join(kept), encoding="utf-8")
            os.replace(tmp, out)
        except OSError as exc:
            raise ConfigError(f"cannot rewrite the results file {str(out)!r}: {exc}") from exc
    return done


def batch_command(
    target: str = typer.Argument(..., help="FILE.py:graph, or a built-in pattern name"),
    tasks_file: Path = typer.Argument(..., help="JSONL: one task (string or object) per line"),
    out: Path = typer.Option(..., "--out", "-o", help="results file (JSONL, appended)"),
    concurrency: int = typer.Option(8, "--concurrency", "-c", help="runs at once (per worker)"),
    ray: bool = typer.Option(
        False, "--ray", help="run on Ray: a local instance, or the cluster at $RAY_ADDRESS"
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="run on the Ray cluster at this address (implies --ray)"
    ),
    workers: int = typer.Option(2, "--workers", help="Ray workers (with --ray)"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="retry failed runs"),
    store: str | None = typer.Option(
        None, "--store", help="run store path or URL (default: $ACCORD_STORE or ./.accord/runs.db)"
    ),
    batch_id: str | None = typer.Option(
        None, "--batch-id", help="the batch id (default: a digest of the graph and the tasks)"
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="backend for agents without one"),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible server"),
    agents: int | None = typer.Option(None, "--agents", "-n", help="agents of a pattern"),
    rounds: int | None = typer.Option(None, "--rounds", "-r", help="rounds of a pattern"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar, no summary"),
) -> None:
    """Run a graph over every task of a JSONL file; results go to --out as runs finish."""
    from accord._terminal import console, safe
    from accord.batch._engine import Batch
    from accord.batch._tasks import read_tasks
    from accord.cli import _fail
    from accord.store import command_store

    err = console(stderr=True)
    try:
        if concurrency < 1:
            raise ConfigError(f"--concurrency must be 1 or more, not {concurrency}.")
        tasks = read_tasks(tasks_file)
        options = {"agents": agents, "rounds": rounds, "model": model, "base_url": base_url}
        graph, backend = cli_graph(target, options)
        factory = functools.partial(cli_graph, target, options)
        on_ray = ray or ray_address is not None
        from accord.batch._tasks import batch_id_for

        run = Batch(
            None if on_ray else graph,
            tasks,
            None if on_ray else backend,
            store=str(store if store is not None else command_store()),
            concurrency=concurrency,
            batch_id=batch_id or batch_id_for(graph.name, tasks),
            retry_failed=retry_failed,
            ray=ray_address or on_ray,
            workers=workers,
            graph_factory=factory if on_ray else None,
        )
        run_ids = {t.id: run.run_id(t.id) for t in run.tasks}
        done = read_done(out, run.batch_id, run_ids, retry_failed)
        run.todo = [t for t in run.tasks if t.id not in done]
        run.summary.skipped = len(done)
        if on_ray:
            from accord.batch._ray import import_ray

            import_ray()
    except UsageError as exc:
        raise _fail(str(exc), 2) from None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a", encoding="utf-8") as sink:
            asyncio.run(_drive(run, sink, quiet, len(done)))
    except KeyboardInterrupt:
        s = run.summary
        err.print(
            f"interrupted: {s.skipped + s.completed + s.stopped + s.failed} of {s.total} tasks "
            "have results; run the same command again to finish the batch."
        )
        raise typer.Exit(130) from None
    except UsageError as exc:
        raise _fail(str(exc), 2) from None
    except AccordError as exc:
        raise _fail(f"{type(exc).__name__}: {exc}", 1) from None
    s = run.summary
    if not quiet:
        err.print(
            f"batch {safe(s.batch_id)}: {s.completed} completed, {s.stopped} stopped, "
            f"{s.failed} failed, {s.skipped} already done ({s.resumed} resumed) in "
            f"{s.duration_s:.1f}s; {s.usage.total_tokens} tokens, ${s.usage.cost:.4f}; "
            f"results in {safe(str(out))}",
            soft_wrap=True,
        )
    if s.failed:
        if not quiet:
            err.print("some tasks failed: see their 'error'; --retry-failed runs them again.")
        raise typer.Exit(1)


async def _drive(run: Any, f: TextIO, quiet: bool, already: int) -> None:
    from accord.batch._progress import BatchProgress

    progress = None if quiet or not sys.stderr.isatty() else BatchProgress(len(run.tasks))
    if progress is not None:
        progress.skip(already)

        def hook(r: Any) -> None:
            if r is None:
                progress.start()
            else:
                progress.finish(r.ok, r.usage)

        run.on_progress = hook
    if progress is not None:
        progress.__enter__()
    try:
        async for r in run:
            f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
            f.flush()
    finally:
        if progress is not None:
            progress.__exit__(None, None, None)


def register(app: typer.Typer) -> None:
    """Add the ``batch`` command to ``app``."""
    app.command("batch")(batch_command)
