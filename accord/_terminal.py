"""Text that accord did not write, made safe to print on a terminal.

Model replies, tasks, error messages and stored runs can hold anything: rich markup (``[/bold]``
would crash rich or restyle the output, ``:emoji:`` codes would be rendered) and raw terminal
control sequences (cursor moves, colour changes, title changes). Everything accord prints that it
did not write goes through :func:`safe` (for rich output with markup on) or :func:`plain` (for
output printed with markup off or to a plain stream), on a console from :func:`console`.

Caveat: newlines and tabs are kept; every other C0/C1 control character and every ANSI escape
sequence is removed, not shown.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "plain", "safe"]

_ANSI = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*[@-~]          # CSI: ESC [ params intermediates final
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?   # OSC: ESC ] ... BEL or ST
    | \x1b[PX^_][^\x1b]*(?:\x1b\\)?  # DCS, SOS, PM, APC strings
    | \x1b[@-Z\\-_]                  # two-character escapes
    | \x9b[0-?]*[ -/]*[@-~]          # 8-bit CSI
    """,
    re.VERBOSE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: str) -> str:
    """``text`` without terminal control sequences or control characters (newlines and tabs kept)."""
    if not text.isprintable():
        text = _CONTROL.sub("", _ANSI.sub("", text))
    return text


def safe(text: str) -> str:
    """``text`` made safe for rich output with markup on: no control sequences, markup escaped.

    Square brackets are escaped so no markup tag can be formed. ``:emoji:`` codes are not touched
    here: accord's consoles are made with ``emoji=False`` (see :func:`console`).
    """
    from rich.markup import escape

    return escape(plain(text))


def console(*, stderr: bool = False) -> Console:
    """A rich console for accord's output: no emoji codes, no automatic highlighting."""
    from rich.console import Console

    return Console(stderr=stderr, emoji=False, highlight=False)
