"""How ``accord run`` checks its flags: the task, the server URL, backend and sampling options.

Every check raises :class:`~accord.errors.ConfigError` with the fix, so the command exits 2 before
anything runs; no flag is silently ignored (an option the pattern does not read is refused, a
backend option the model's backend does not take is refused).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from accord.errors import ConfigError

__all__ = [
    "PATTERN_OPTIONS",
    "MIN_AGENTS",
    "check_base_url",
    "backend_options",
    "check_pattern_options",
    "apply_sampling",
    "read_task",
]

# The options of `accord run` each built-in pattern reads; any other is refused, not ignored.
PATTERN_OPTIONS: dict[str, frozenset[str]] = {
    "debate": frozenset({"agents", "rounds"}),
    "critique": frozenset({"rounds"}),
    "plan_solve_verify": frozenset({"rounds"}),
    "moa": frozenset({"agents", "rounds"}),
    "round_robin": frozenset({"agents", "rounds"}),
    "judge_panel": frozenset({"agents", "rounds"}),
    "self_consistency": frozenset({"agents"}),
}
MIN_AGENTS = {"debate": 2, "judge_panel": 2}


def check_base_url(base_url: str) -> str:
    """``base_url`` if it is an http(s) URL with a host; else a usage error that shows the fix.

    Raises:
        ConfigError: no scheme (``localhost:8095/v1``), another scheme, or no host.
    """
    try:
        parts = urlsplit(base_url)
        host = parts.hostname
    except ValueError as exc:
        raise ConfigError(f"--base-url {base_url!r} is not a valid URL ({exc}).") from exc
    if parts.scheme not in ("http", "https") or not host:
        guess = base_url.split("://", 1)[-1].lstrip("/")
        raise ConfigError(
            f"--base-url {base_url!r} is not an http(s) URL. Write the scheme and host, e.g. "
            f"'http://{guess}'."
        )
    return base_url


def backend_options(
    name: str,
    *,
    timeout: float | None = None,
    concurrency: int | None = None,
    structured: str | None = None,
) -> dict[str, Any]:
    """The backend constructor options for ``--timeout``, ``--concurrency`` and ``--structured``.

    Only options the named backend's constructor takes are passed; one it does not take is a
    usage error naming the flag (so a flag is never silently ignored).

    Raises:
        ConfigError: a flag that does not apply to this kind of model, or a bad value.
    """
    flags = {"--timeout": timeout, "--concurrency": concurrency, "--structured": structured}
    given = [flag for flag, value in flags.items() if value is not None]
    if not given:
        return {}
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--timeout must be more than 0 seconds, not {timeout}.")
    if concurrency is not None and concurrency < 1:
        raise ConfigError(f"--concurrency must be 1 or more, not {concurrency}.")
    if not name.startswith("openai:"):
        raise ConfigError(
            f"{' and '.join(given)} only {'applies' if len(given) == 1 else 'apply'} to "
            f"'openai:' models (OpenAI-compatible servers), not {name!r}."
        )
    from accord.backends.openai import OpenAIBackend

    params = inspect.signature(OpenAIBackend.__init__).parameters
    # The option names this version's backend has: `structured` (or the older
    # `structured_output`), `max_concurrency`, `timeout`.
    structured_param = "structured" if "structured" in params else "structured_output"
    wanted = {
        "timeout": timeout,
        "max_concurrency": concurrency,
        structured_param: structured,
    }
    options: dict[str, Any] = {}
    for (flag, _), (param, value) in zip(flags.items(), wanted.items(), strict=True):
        if value is None:
            continue
        if param not in params:
            raise ConfigError(f"{flag} is not supported by this version's OpenAI backend.")
        options[param] = value
    return options


def check_pattern_options(target: str, given: dict[str, Any]) -> None:
    """Refuse options (``--agents``, ``--rounds``) that ``target`` would not use.

    Raises:
        ConfigError: naming the option and what the target reads instead.
    """
    used = PATTERN_OPTIONS.get(target)
    for option, value in given.items():
        if value is None:
            continue
        if used is None:
            raise ConfigError(
                f"--{option} applies to the built-in patterns; a graph from a file sets its own "
                f"agents and rounds. Remove --{option}."
            )
        if option not in used:
            reads = " and ".join(f"--{o}" for o in sorted(used))
            raise ConfigError(
                f"{target} does not use --{option} (it reads {reads}). Remove --{option}."
            )


def apply_sampling(
    graph: Any,
    temperature: float | None,
    max_tokens: int | None,
    top_p: float | None = None,
) -> None:
    """Give every agent of ``graph`` that sets none of its own this temperature / max_tokens /
    top_p."""
    from accord.agents import Agent

    options = (("temperature", temperature), ("max_tokens", max_tokens), ("top_p", top_p))
    for node in graph.nodes.values():
        agent = node if isinstance(node, Agent) else getattr(node, "agent", None)
        if isinstance(agent, Agent):
            for key, value in options:
                if value is not None and agent._options.get(key) is None:
                    agent._options[key] = value
                    agent._request_fields[key] = value
        inner = getattr(node, "graph", None)
        if inner is not None:
            apply_sampling(inner, temperature, max_tokens, top_p)


def read_task(task: str | None, task_file: Path | None) -> str:
    """The task: the argument, standard input (``-``), or the contents of ``--task-file``.

    Raises:
        ConfigError: both or neither given, an unreadable file, or an empty task.
    """
    if task is not None and task_file is not None:
        raise ConfigError("give the task either as an argument or with --task-file, not both.")
    where = "the task"
    try:
        if task_file is not None and str(task_file) != "-":
            where = f"--task-file {str(task_file)!r}"
            text = task_file.read_text(encoding="utf-8")
        elif task == "-" or task_file is not None:
            where = "standard input"
            text = sys.stdin.read()
        elif task is None:
            raise ConfigError(
                "no task given. Write it in quotes after the pattern, '-' to read it from standard "
                "input, or --task-file FILE."
            )
        else:
            text = task
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {where}: {exc}.") from exc
    if not text.strip():
        raise ConfigError(f"{where} is empty. Give the question or instruction to work on.")
    return text.strip() if where != "the task" else text
