"""``accord runs``: list, show, resume, export and trace the runs in a run store.

Wire it into the ``accord`` command with :func:`register`. Every command takes ``--store PATH``
(default ``ACCORD_STORE``, else ``./.accord/runs.db``). Exit codes: 0 success, 2 a usage error
(unknown run id, bad option, a graph that does not match the run), 1 a run or store error.

Caveat: ``runs resume`` imports the graph's Python file (``--graph FILE:VAR``, or the source the
run recorded), which runs that file's top-level code.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

from accord.errors import AccordError, ConfigError, UsageError
from accord.store._base import RunStore
from accord.store._run import open_store
from accord.store._trace import write_trace
from accord.store._views import export_json, load_view

__all__ = ["register", "runs_app", "load_graph"]

runs_app = typer.Typer(
    name="runs", no_args_is_help=True, help="List, show, resume, export and trace recorded runs."
)

StoreOption = typer.Option(
    None, "--store", help="Run store file (default: ACCORD_STORE or ./.accord/runs.db)."
)


def register(app: typer.Typer) -> None:
    """Add the ``runs`` command group to ``app``."""
    app.add_typer(runs_app, name="runs")


def _fail(exc: AccordError) -> NoReturn:
    typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
    raise typer.Exit(2 if isinstance(exc, UsageError) else 1)


def _store(path: Path | None) -> RunStore:
    try:
        return open_store(path)
    except AccordError as exc:
        _fail(exc)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%m-%d %H:%M")


def load_graph(spec: str) -> Any:
    """The graph named by ``FILE.py:NAME`` (the convention of ``accord run``), with its source set.

    Raises:
        ConfigError: the file or the name is missing, or it is not a Graph.
    """
    from accord.cli import load_graph as load

    graph = load(spec)
    path, sep, name = spec.rpartition(":")
    if not sep or not path.endswith(".py"):
        path, name = spec, "graph"
    graph.source = f"{Path(path).resolve()}:{name}"
    return graph


@runs_app.command("list")
def list_runs(
    store: Path | None = StoreOption,
    status: str | None = typer.Option(None, help="Only runs with this status."),
    graph: str | None = typer.Option(None, help="Only runs of this graph name."),
    limit: int = typer.Option(20, min=1, help="How many runs to show, newest first."),
) -> None:
    """List the runs in the store, newest first."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    target = _store(store)
    filters: dict[str, Any] = {}
    if status:
        filters["status"] = status
    if graph:
        filters["graph"] = graph
    try:
        records = target.list_runs(filters, limit=limit)
    except AccordError as exc:
        _fail(exc)
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("run id", no_wrap=True, min_width=16)
    table.add_column("graph", min_width=6)
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("started", no_wrap=True)
    for name in ("steps", "tokens", "cost"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in records:
        table.add_row(
            r.run_id,
            r.graph,
            r.status,
            _when(r.started_at),
            str(r.activations),
            str(r.usage.total_tokens),
            f"${r.usage.cost:.4f}",
        )
    Console().print(table)


@runs_app.command("show")
def show(run_id: str, store: Path | None = StoreOption) -> None:
    """Show a run: its transcript and a usage table."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    target = _store(store)
    try:
        view = load_view(target, run_id)
    except AccordError as exc:
        _fail(exc)
    r = view.record
    console = Console()
    console.print(
        f"[bold]run {r.run_id}[/bold]  graph {r.graph} ({r.structure_hash})  status {r.status}"
        f"  attempts {r.attempts}  started {_when(r.started_at)}",
        markup=True,
        highlight=False,
    )
    if r.stop_reason:
        console.print(f"stop reason: {r.stop_reason}", markup=False)
    console.print(Panel(r.task, title="task"))
    for m in view.transcript:
        console.print(Panel(m.text, title=f"{m.sender} · round {m.round}", title_align="left"))
    table = Table("agent", "requests", "prompt tokens", "completion tokens", "cost")
    for agent, u in view.usage_by_agent.items():
        table.add_row(
            agent, str(u.requests), str(u.prompt_tokens), str(u.completion_tokens), f"${u.cost:.4f}"
        )
    u = r.usage
    table.add_row(
        "total",
        str(u.requests),
        str(u.prompt_tokens),
        str(u.completion_tokens),
        f"${u.cost:.4f}",
        style="bold",
    )
    console.print(table)


@runs_app.command("resume")
def resume(
    run_id: str,
    graph: str | None = typer.Option(
        None, "--graph", help="FILE.py:VAR of the graph (default: the source the run recorded)."
    ),
    backend: str | None = typer.Option(
        None, "--backend", help="Default backend ('provider:model') for agents without one."
    ),
    durability: str | None = typer.Option(None, help="'async' or 'sync'."),
    store: Path | None = StoreOption,
) -> None:
    """Finish a run that stopped or crashed: stored activations are not run again."""
    target = _store(store)
    try:
        spec = graph or target.get_run(run_id).graph_source
        if not spec:
            raise ConfigError(
                f"run {run_id!r} did not record where its graph is defined. Give it with "
                "--graph path/to/file.py:variable."
            )
        g = load_graph(spec)
        result = asyncio.run(g.resume(run_id, backend, store=target, durability=durability))
    except AccordError as exc:
        _fail(exc)
    typer.echo(f"run {result.run_id} {result.status}: {result.text}")


@runs_app.command("export")
def export(
    run_id: str,
    as_json: bool = typer.Option(False, "--json", help="Export as JSON (the only format)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here, not to stdout."),
    store: Path | None = StoreOption,
) -> None:
    """Export everything stored about a run (secrets were removed when it was recorded)."""
    if not as_json:
        typer.echo("error: choose a format: --json", err=True)
        raise typer.Exit(2)
    target = _store(store)
    try:
        data = export_json(target, run_id)
    except AccordError as exc:
        _fail(exc)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        output.write_text(text + "\n", encoding="utf-8")


@runs_app.command("trace")
def trace(
    run_id: str,
    html: Path = typer.Option(..., "--html", help="Write the trace page to this file."),
    store: Path | None = StoreOption,
) -> None:
    """Write a self-contained HTML trace of a run (graph, timeline, messages, usage)."""
    target = _store(store)
    try:
        path = write_trace(target, run_id, html)
    except AccordError as exc:
        _fail(exc)
    typer.echo(f"wrote {path}")
