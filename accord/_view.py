"""The terminal view of a run (rich): live while it runs, and the summary at the end.

The live view shows one row per agent (state, round, tokens streamed so far, the tail of what it is
writing) and the elapsed time; the summary prints the answer and a usage table per agent. Names, task and model text are shown as
plain text (:func:`accord._terminal.plain` inside ``rich.text.Text``): no markup, emoji codes or
terminal escapes from them reach the terminal.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from accord._terminal import console as make_console
from accord._terminal import plain
from accord.runtime import events as ev
from accord.runtime.result import RunResult

__all__ = ["LiveView", "print_summary", "usage_table"]


class LiveView:
    """A rich ``Live`` display fed by run events (``on_event``)."""

    def __init__(self, graph: Any, console: Console | None = None) -> None:
        self.console = console or make_console()
        self.rows: dict[str, dict[str, Any]] = {
            name: {"state": "waiting", "round": "", "chunks": 0, "tail": ""} for name in graph.nodes
        }
        self.started = time.perf_counter()
        self.retries = 0
        self._live = Live(
            self._render(), console=self.console, refresh_per_second=8, transient=True
        )

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def on_event(self, event: Any) -> None:
        row = self.rows.get(getattr(event, "node", ""), None)
        if isinstance(event, ev.ActivationStarted) and row is not None:
            row.update(state="working", round=str(event.round), tail="")
        elif isinstance(event, ev.TokenEvent) and row is not None:
            row["chunks"] += 1
            row["tail"] = (row["tail"] + event.text)[-70:]
        elif isinstance(event, ev.ActivationFinished) and row is not None:
            row["state"] = "cached" if event.cached else "done"
        elif isinstance(event, ev.RetryEvent):
            self.retries += 1
        self._live.update(self._render())

    def _render(self) -> Panel:
        table = Table(expand=True, show_edge=False)
        for column in ("agent", "state", "round", "chunks", "writing"):
            table.add_column(
                column, overflow="ellipsis", no_wrap=True, ratio=4 if column == "writing" else None
            )
        styles = {"working": "bold yellow", "done": "green", "cached": "cyan", "waiting": "dim"}
        for name, row in self.rows.items():
            table.add_row(
                Text(plain(name)),
                Text(row["state"], style=styles.get(row["state"], "")),
                row["round"],
                str(row["chunks"]),
                Text(plain(row["tail"].replace("\n", " "))),
            )
        elapsed = time.perf_counter() - self.started
        footer = Text(
            f"{elapsed:5.1f} s" + (f"   retries: {self.retries}" if self.retries else ""),
            style="dim",
        )
        return Panel(Group(table, footer), title="accord", border_style="blue")


def usage_table(result: RunResult) -> Table:
    """Calls, tokens, cost and time per agent, with a total row."""
    seconds: dict[str, float] = {}
    for t in result.timings:
        seconds[t.node] = seconds.get(t.node, 0.0) + t.duration_s
    table = Table(title="usage", show_edge=False)
    for column in ("agent", "calls", "prompt tokens", "completion tokens", "cost $", "time s"):
        table.add_column(column, justify="left" if column == "agent" else "right")
    for name, usage in result.usage_by_agent.items():
        table.add_row(
            Text(plain(name)),
            str(usage.requests),
            str(usage.prompt_tokens),
            str(usage.completion_tokens),
            f"{usage.cost:.4f}",
            f"{seconds.get(name, 0.0):.2f}",
        )
    u = result.usage
    table.add_row(
        "total",
        str(u.requests),
        str(u.prompt_tokens),
        str(u.completion_tokens),
        f"{u.cost:.4f}",
        f"{result.duration_s:.2f}",
        style="bold",
    )
    return table


def print_summary(console: Console, result: RunResult, answer: str) -> None:
    """Print the answer and the usage table."""
    status = "" if result.status == "completed" else f" ({result.status}: {result.stop_reason})"
    console.print(
        Panel(
            Text(plain(answer) or "(no answer)"),
            title=Text(plain(f"answer{status}")),
            border_style="green",
        )
    )
    console.print(usage_table(result))
    console.print(Text(f"run {result.run_id}", style="dim"))
