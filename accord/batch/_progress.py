"""The batch's live progress bar (rich, on standard error): done, failed, running, tokens, cost,
elapsed time and ETA.

Caveat: the bar is drawn only on a terminal; elsewhere rich prints nothing until it stops, and
the command then prints the summary line.
"""

from __future__ import annotations

from typing import Any

from accord.messages import Usage

__all__ = ["BatchProgress"]


class BatchProgress:
    """A progress bar over ``total`` tasks; ``start``/``finish`` as each task runs."""

    def __init__(self, total: int, *, label: str = "batch") -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from accord._terminal import console, safe

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed[/] · {task.fields[running]} running"),
            TextColumn("{task.fields[tokens]} tok · ${task.fields[cost]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task(
            safe(label), total=total, failed=0, running=0, tokens=0, cost="0.0000"
        )
        self.failed = 0
        self.running = 0
        self.usage = Usage()

    def __enter__(self) -> BatchProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def _update(self, advance: int = 0) -> None:
        self._progress.update(
            self._task,
            advance=advance,
            failed=self.failed,
            running=self.running,
            tokens=self.usage.total_tokens,
            cost=f"{self.usage.cost:.4f}",
        )

    def start(self) -> None:
        self.running += 1
        self._update()

    def finish(self, ok: bool, usage: Usage, *, was_running: bool = True) -> None:
        if was_running:
            self.running -= 1
        self.failed += 0 if ok else 1
        self.usage = self.usage + usage
        self._update(advance=1)

    def skip(self, count: int) -> None:
        """Count ``count`` tasks already done before this start."""
        self._update(advance=count)
