"""The ``accord merge CONFIG OUT_DIR`` command.

``register(app)`` adds the command to a typer app (``accord/cli.py`` calls it). It prints a
progress bar on stderr (tensors done, bytes, time left), ``--dry-run`` runs the plan and every
pre-merge check and writes nothing. Exit codes follow the rest of the CLI: 0 success, 2 usage
errors (bad config, bad option, taken output folder, missing extra), 1 run errors (an input or a
post-write check failed).

Caveat: options given on the command line (``--seed``, ``--max-shard-size``...) override the
same keys in the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from accord.errors import RunError, UsageError

__all__ = ["register", "merge_command"]

_HELP = (
    "Merge models as a mergekit-style YAML config says (linear, slerp, task_arithmetic, ties, "
    "dare_linear, dare_ties, model_stock) and write the merged model to OUT_DIR."
)


def merge_command(
    config: Annotated[Path, typer.Argument(help="merge config (mergekit's YAML format)")],
    out_dir: Annotated[Path, typer.Argument(help="folder to write the merged model into")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="plan and run the checks only; write nothing")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="replace OUT_DIR if it already holds files")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="seed for the DARE methods")] = None,
    max_shard_size: Annotated[
        str | None, typer.Option(help="largest output shard, e.g. 2GB or 500MiB")
    ] = None,
    vocab_policy: Annotated[
        str | None, typer.Option(help="fail (default) or base: keep the base model's vocabulary")
    ] = None,
    out_dtype: Annotated[
        str | None, typer.Option(help="dtype to write: float32, bfloat16 or float16")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
) -> None:
    """Merge models as CONFIG says and write the result to OUT_DIR."""
    try:
        _run(
            config,
            out_dir,
            dry_run=dry_run,
            overwrite=overwrite,
            quiet=quiet,
            overrides={
                "seed": seed,
                "max_shard_size": max_shard_size,
                "vocab_policy": vocab_policy,
                "out_dtype": out_dtype,
            },
        )
    except UsageError as exc:
        _fail(exc, 2)
    except RunError as exc:
        _fail(exc, 1)


def _fail(exc: Exception, code: Literal[1, 2]) -> None:
    from accord._terminal import plain

    typer.echo(f"error: {plain(str(exc))}", err=True)
    raise typer.Exit(code)


def _run(
    config: Path,
    out_dir: Path,
    *,
    dry_run: bool,
    overwrite: bool,
    quiet: bool,
    overrides: dict[str, Any],
) -> None:
    from accord.merge import load_config, plan
    from accord.merge._engine import execute

    loaded = load_config(config)
    updates = {k: v for k, v in overrides.items() if v is not None}
    if updates:
        loaded = load_config({**loaded.model_dump(mode="json", exclude_none=True), **updates})
    merge_plan = plan(loaded, out_dir, overwrite=overwrite)
    if dry_run:
        typer.echo(merge_plan.describe())
        typer.echo(f"checks passed; dry run, nothing written to {out_dir}")
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]merge[/bold]"),
        BarColumn(),
        TextColumn("{task.fields[tensors]} tensors"),
        DownloadColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    total = len(merge_plan.tasks)
    with Progress(*columns, console=Console(stderr=True), disable=quiet) as bar:
        task = bar.add_task("merge", total=merge_plan.out_bytes, tensors=f"0/{total}")
        result = execute(
            merge_plan,
            out_dir,
            overwrite=overwrite,
            progress=lambda p: bar.update(
                task, completed=p.bytes_done, tensors=f"{p.tensors_done}/{p.tensors_total}"
            ),
        )
    typer.echo(
        f"merged {result.tensors} tensors with {result.method} into {result.out_dir} "
        f"({len(result.files)} weight file(s), {result.bytes_written / 1e6:,.1f} MB, "
        f"{result.seconds:.1f} s)"
    )


def register(app: typer.Typer) -> None:
    """Add the ``merge`` command to ``app``."""
    app.command("merge", help=_HELP)(merge_command)


if __name__ == "__main__":  # python -m accord.merge.cli merge CONFIG OUT_DIR (benchmarks, tests)
    _app = typer.Typer(add_completion=False)

    @_app.callback()
    def _root() -> None:
        """accord's merge command, standalone."""

    register(_app)
    _app()
