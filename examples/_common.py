"""Shared command-line handling for the examples: every example takes --model and --base-url."""

from __future__ import annotations

import argparse
import sys
from types import TracebackType

import accord


def _quiet_interrupt(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    """Ctrl-C ends an example with one line (exit status 130), not a traceback."""
    if issubclass(kind, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return
    sys.__excepthook__(kind, value, tb)


def parse(description: str, default_task: str) -> argparse.Namespace:
    sys.excepthook = _quiet_interrupt
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("task", nargs="?", default=default_task)
    parser.add_argument(
        "--model",
        default=None,
        help="e.g. openai:gpt-4o-mini or hf:./folder (default: $ACCORD_MODEL)",
    )
    parser.add_argument(
        "--base-url", default=None, help="an OpenAI-compatible server for openai: models"
    )
    return parser.parse_args()


def backend(args: argparse.Namespace) -> accord.Backend:
    name = args.model or accord.default_model()
    return accord.backend(name, base_url=args.base_url) if args.base_url else accord.backend(name)
