"""``accord runs``: list, show, answer, resume, export and trace the runs in a run store.

Wire it into the ``accord`` command with :func:`register`. Every command takes ``--store PATH``
(default ``ACCORD_STORE``, else ``./.accord/runs.db``). Exit codes: 0 success, 2 a usage error
(unknown run id, bad option, a graph that does not match the run), 1 a run or store error.

Everything printed that accord did not write (tasks, messages, errors) has secrets redacted,
terminal control sequences removed and rich markup escaped.

Caveat: ``runs resume`` imports the graph's Python file (``--graph FILE:VAR``, or the file the
run recorded), which runs that file's top-level code; a run of a built-in pattern is rebuilt from
the pattern and options it recorded.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

from accord._terminal import console, plain, safe
from accord.errors import AccordError, ConfigError, UsageError
from accord.runtime import Question, parse_value
from accord.store._base import RunStore
from accord.store._codec import redact
from accord.store._questions import QuestionTable, give_answers
from accord.store._run import command_store, shared_store
from accord.store._trace import write_trace
from accord.store._views import export_json, load_view

__all__ = ["register", "runs_app", "load_graph"]

runs_app = typer.Typer(
    name="runs", no_args_is_help=True, help="List, show, resume, export and trace recorded runs."
)

StoreOption = typer.Option(
    None,
    "--store",
    help="Run store file or postgresql:// URL (default: ACCORD_STORE or ./.accord/runs.db).",
)


def register(app: typer.Typer) -> None:
    """Add the ``runs`` command group to ``app``."""
    app.add_typer(runs_app, name="runs")


def _fail(exc: AccordError) -> NoReturn:
    typer.echo(f"error: {type(exc).__name__}: {_shown(str(exc))}", err=True)
    raise typer.Exit(2 if isinstance(exc, UsageError) else 1)


def _shown(text: str) -> str:
    """Text accord did not write, for plain output: secrets redacted, control sequences gone."""
    return plain(redact(text))


def _rich(text: str) -> str:
    """The same for rich output with markup on (markup escaped)."""
    return safe(redact(text))


def _store(path: str | None) -> RunStore:
    try:
        return shared_store(path if path is not None else command_store())
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
    store: str | None = StoreOption,
    status: str | None = typer.Option(None, help="Only runs with this status."),
    graph: str | None = typer.Option(None, help="Only runs of this graph name."),
    limit: int = typer.Option(20, min=1, help="How many runs to show, newest first."),
    waiting: bool = typer.Option(
        False, "--waiting", help="Only runs waiting for a person's answer, with their questions."
    ),
) -> None:
    """List the runs in the store, newest first."""
    from rich import box
    from rich.table import Table

    target = _store(store)
    filters: dict[str, Any] = {}
    if waiting and status and status != "waiting":
        _fail(ConfigError(f"--waiting lists waiting runs only; drop --status {status}."))
    if status or waiting:
        filters["status"] = status or "waiting"
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
            _rich(r.run_id),
            _rich(r.graph),
            r.status,
            _when(r.started_at),
            str(r.activations),
            str(r.usage.total_tokens),
            f"${r.usage.cost:.4f}",
        )
    console().print(table)
    if waiting:
        for r in records:
            for q in _pending(target, r.run_id):
                console().print(f"{_rich(r.run_id)}  {_rich(q.id)}: {_rich(q.question)}")


@runs_app.command("show")
def show(run_id: str, store: str | None = StoreOption) -> None:
    """Show a run: its transcript and a usage table."""
    from rich.panel import Panel
    from rich.table import Table

    target = _store(store)
    try:
        view = load_view(target, run_id)
    except AccordError as exc:
        _fail(exc)
    r = view.record
    out = console()
    out.print(
        f"[bold]run {_rich(r.run_id)}[/bold]  graph {_rich(r.graph)} ({_rich(r.structure_hash)})"
        f"  status {_rich(r.status)}  attempts {r.attempts}  started {_when(r.started_at)}"
    )
    if r.stop_reason:
        out.print(f"stop reason: {_rich(r.stop_reason)}")
    for q in _pending(target, run_id):
        out.print(f"waiting for {_rich(q.id)} ({_rich(q.node)}): {_rich(q.question)}")
    out.print(Panel(_rich(r.task), title="task"))
    for m in view.transcript:
        title = f"{_rich(m.sender)} · round {m.round}"
        out.print(Panel(_rich(m.text), title=title, title_align="left"))
    table = Table("agent", "requests", "prompt tokens", "completion tokens", "cost")
    for agent, u in view.usage_by_agent.items():
        table.add_row(
            _rich(agent),
            str(u.requests),
            str(u.prompt_tokens),
            str(u.completion_tokens),
            f"${u.cost:.4f}",
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
    out.print(table)


def _pending(target: RunStore, run_id: str) -> list[Question]:
    """The run's questions still waiting for an answer."""
    if not isinstance(target, QuestionTable):
        return []
    try:
        return [r.question for r in target.questions(run_id) if r.pending]
    except AccordError as exc:
        _fail(exc)


@runs_app.command("answer")
def answer(
    run_id: str,
    args: list[str] = typer.Argument(
        None, help="[QUESTION_ID] VALUE: the value as JSON (true, 3, {...}) or as text"
    ),
    json_file: Path | None = typer.Option(
        None, "--json", help="Read the answer (JSON) from this file ('-': standard input)."
    ),
    resume_run: bool = typer.Option(
        False, "--resume", help="Resume the run once its questions are answered."
    ),
    graph: str | None = typer.Option(
        None, "--graph", help="With --resume: FILE.py:NAME of the graph (default: as recorded)."
    ),
    store: str | None = StoreOption,
) -> None:
    """Answer a question a waiting run asks (the only pending one when no QUESTION_ID is given).

    The answer is checked against the question's schema; a wrong one is refused (exit 2) and
    the run stays waiting."""
    target = _store(store)
    try:
        target.get_run(run_id)
        pending = _pending(target, run_id)
        given = list(args or [])
        if json_file is not None:
            raw = sys.stdin.read() if str(json_file) == "-" else _read(json_file)
            if len(given) > 1:
                raise ConfigError("with --json FILE, give at most a QUESTION_ID.")
            try:
                value = json.loads(raw)
            except ValueError as exc:
                raise ConfigError(f"{json_file} does not hold JSON: {exc}") from exc
            qid = given[0] if given else None
        elif len(given) == 2:
            qid, text = given
            value = None
        elif len(given) == 1:
            qid, text = None, given[0]
            value = None
        else:
            raise ConfigError("give the answer: accord runs answer RUN_ID [QUESTION_ID] VALUE.")
        if qid is None:
            if len(pending) != 1:
                listed = ", ".join(q.id for q in pending) or "none"
                raise ConfigError(
                    f"run {run_id!r} has {len(pending)} pending questions ({listed}): name the "
                    "one you answer (accord runs answer RUN_ID QUESTION_ID VALUE)."
                )
            qid = pending[0].id
        if json_file is None:
            schema = next((q.answer_schema for q in pending if q.id == qid), {})
            value = parse_value(text, schema)
        give_answers(target, run_id, {qid: value})
        left = [q.id for q in pending if q.id != qid]
        if resume_run and not left:
            g = graph_of_run(target, run_id, graph)
            result = _run_async(g.resume(run_id, _backend(g, None, None), store=target))
    except AccordError as exc:
        _fail(exc)
    typer.echo(f"answered {_shown(qid)} of run {_shown(run_id)}")
    if resume_run and not left:
        typer.echo(f"run {_shown(result.run_id)} {result.status}: {_shown(result.text)}")
    elif left:
        typer.echo(f"still waiting for: {_shown(', '.join(left))}")
    else:
        typer.echo(f"resume it with: accord runs resume {_shown(run_id)}")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


@runs_app.command("resume")
def resume(
    run_id: str,
    graph: str | None = typer.Option(
        None,
        "--graph",
        help="FILE.py:NAME of the graph (default: the file or pattern the run recorded).",
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="as for `accord run`: 'openai:NAME', 'hf:HUB_ID' or 'hf:./folder' (default: "
        "$ACCORD_MODEL or the default model), for agents without a backend of their own",
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"
    ),
    durability: str | None = typer.Option(None, help="'async' or 'sync'."),
    store: str | None = StoreOption,
) -> None:
    """Finish a run that stopped or crashed: stored activations are not run again."""
    target = _store(store)
    try:
        record = target.get_run(run_id)  # an unknown id is reported before a model loads
        g = graph_of_run(target, run_id, graph)
        if g.structure_hash() != record.structure_hash:
            raise ConfigError(
                f"run {run_id!r} was recorded with graph {record.graph!r} of structure "
                f"{record.structure_hash}, but the graph given has structure "
                f"{g.structure_hash()}: its nodes, edges or bounds differ. Resume the run with "
                "the graph that started it (--graph FILE.py:NAME)."
            )
        backend = _backend(g, model, base_url)
        result = _run_async(g.resume(run_id, backend, store=target, durability=durability))
    except AccordError as exc:
        _fail(exc)
    typer.echo(f"run {_shown(result.run_id)} {result.status}: {_shown(result.text)}")


def graph_of_run(target: RunStore, run_id: str, spec: str | None) -> Any:
    """The graph to resume run ``run_id`` with: ``spec`` (``FILE.py:NAME``), else the file or the
    built-in pattern (with its options) the run recorded.

    Raises:
        ConfigError: the run recorded neither and no ``spec`` was given, or the origin is broken.
    """
    if spec:
        return load_graph(spec)
    origin = target.get_run(run_id).graph_source
    if not origin:
        raise ConfigError(
            f"run {run_id!r} did not record how its graph was made (it was started from Python "
            "without graph.origin). Name the graph's file: accord runs resume "
            f"{run_id} --graph path/to/file.py:NAME."
        )
    if not origin.startswith("{"):
        return load_graph(origin)
    try:
        options = json.loads(origin)
        pattern = options.pop("pattern")
    except (ValueError, KeyError, AttributeError) as exc:
        raise ConfigError(
            f"run {run_id!r} recorded an origin accord cannot read ({origin[:200]!r}). Name the "
            f"graph's file with --graph FILE.py:NAME."
        ) from exc
    if "file" in options:
        return load_graph(str(options["file"]))
    from accord.cli import build_pattern

    try:
        g = build_pattern(pattern, **options)
    except TypeError as exc:
        raise ConfigError(
            f"run {run_id!r} was made by pattern {pattern!r} with options {options}, which this "
            f"accord cannot build again ({exc})."
        ) from exc
    g.origin = {"pattern": pattern, **options}
    return g


def _backend(graph: Any, model: str | None, base_url: str | None) -> Any:
    from accord.cli import _needs_model, resolve_model

    from_file = bool(getattr(graph, "source", None))
    if model or base_url or not from_file or _needs_model(graph):
        return resolve_model(model, base_url)
    return None


def _run_async(coro: Any) -> Any:
    return asyncio.run(coro)


@runs_app.command("export")
def export(
    run_id: str,
    as_json: bool = typer.Option(
        True, "--json", help="Export as JSON (the only format, and the default)."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here, not to stdout."),
    store: str | None = StoreOption,
) -> None:
    """Export everything stored about a run as JSON (anything that looks like a secret is
    redacted)."""
    del as_json  # JSON is the only format; --json is accepted for scripts that pass it
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
    store: str | None = StoreOption,
) -> None:
    """Write a self-contained HTML trace of a run (graph, timeline, messages, usage)."""
    target = _store(store)
    try:
        path = write_trace(target, run_id, html)
    except AccordError as exc:
        _fail(exc)
    typer.echo(f"wrote {_shown(str(path))}")
