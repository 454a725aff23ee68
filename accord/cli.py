"""The ``accord`` command (typer). Subcommands: run, graph, runs, merge."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="accord",
    no_args_is_help=True,
    add_completion=False,
    help="Make several language models work together.",
)


def main() -> None:
    """Console-script entry point."""
    app()
