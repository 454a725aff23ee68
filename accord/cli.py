"""The ``accord`` command.

``accord run PATTERN "task"`` runs a built-in pattern (or ``accord run FILE.py:graph "task"`` a
graph of yours) with a live view of the agents at work; the task may also come from standard input
(``accord run debate -``) or a file (``--task-file F``). ``accord graph FILE.py:graph`` draws a
graph; ``accord runs ...`` reads the run store; ``accord merge`` merges model weights.

Everything printed that accord did not write (model text, tasks, error messages) goes through
:mod:`accord._terminal`, so markup and terminal escapes in it are shown as text or removed.

Exit codes: 0 success, 2 usage errors (unknown pattern, bad option, invalid graph, missing file:
the message says how to fix it), 1 run errors, 130 when interrupted (Ctrl-C cancels the run).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from accord._run_options import (
    MIN_AGENTS,
    PATTERN_OPTIONS,
    apply_sampling,
    backend_options,
    check_base_url,
    check_pattern_options,
    read_task,
)
from accord._terminal import console, plain, safe
from accord.errors import AccordError, ConfigError, UsageError

app = typer.Typer(
    name="accord",
    no_args_is_help=True,
    add_completion=False,
    help="Make several language models work together: debate, critique, plan-solve-verify, "
    "mixture-of-agents, ensembles, merging.",
)

_err = console(stderr=True)

PATTERNS = (
    "debate",
    "critique",
    "plan_solve_verify",
    "moa",
    "round_robin",
    "judge_panel",
    "self_consistency",
)


def _fail(message: str, code: int) -> typer.Exit:
    _err.print(f"[bold red]error:[/] {safe(message)}", soft_wrap=True)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        from accord import __version__

        print(f"accord {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    pass


def load_graph(spec: str) -> Any:
    """Load ``path/to/file.py:name``: a Graph, or a function returning one.

    Raises:
        ConfigError: the file or the name is missing, or it is not a graph.
    """
    from accord.graphs import Graph

    path_text, sep, attr = spec.rpartition(":")
    if not sep or not path_text.endswith(".py"):
        path_text, attr = spec, "graph"
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(
            f"no such file: {str(path)!r}. Give a Python file and a name, like 'my_graphs.py:graph'."
        )
    module_name = f"_accord_user_{path.stem}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigError(f"cannot import {str(path)!r} as a Python module.")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.resolve().parent))
    try:
        loader_spec.loader.exec_module(module)
    except AccordError:
        raise
    except Exception as exc:
        raise ConfigError(f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.pop(0)
    found = getattr(module, attr, None)
    if found is None:
        names = [n for n, v in vars(module).items() if isinstance(v, Graph)]
        hint = f" Graphs in it: {', '.join(names)}." if names else ""
        raise ConfigError(f"{str(path)!r} has no {attr!r}.{hint} Write FILE.py:NAME.")
    if callable(found) and not isinstance(found, Graph):
        found = found()
    if not isinstance(found, Graph):
        raise ConfigError(f"{spec!r} is a {type(found).__name__}, not an accord.Graph.")
    found.source = f"{path.resolve()}:{attr}"  # lets `accord runs resume ID` find the graph again
    return found


def resolve_model(
    model: str | None,
    base_url: str | None,
    *,
    timeout: float | None = None,
    concurrency: int | None = None,
    structured: str | None = None,
) -> Any:
    """The backend for ``--model``/``--base-url`` (``ACCORD_MODEL`` or the default model).

    Raises:
        ConfigError: a model without a provider prefix, a ``--base-url`` that is not an http(s)
            URL or given for a non-``openai:`` model, or backend flags that do not apply.
    """
    from accord.backends import backend, default_model

    name = model or default_model()
    if ":" not in name:
        if base_url is None:
            raise ConfigError(
                f"model {name!r} has no provider prefix. Write 'openai:{name}' (with --base-url for "
                f"a local server) or 'hf:{name}'."
            )
        name = f"openai:{name}"
    options: dict[str, Any] = {}
    if base_url is not None:
        if not name.startswith("openai:"):
            raise ConfigError(
                "--base-url only applies to 'openai:' models (OpenAI-compatible servers)."
            )
        options["base_url"] = check_base_url(base_url)
    options.update(
        backend_options(name, timeout=timeout, concurrency=concurrency, structured=structured)
    )
    return backend(name, **options)


def build_pattern(
    pattern: str,
    agents: int | None = None,
    rounds: int | None = None,
    *,
    temperature: float | None = None,
    max_tokens: int | None = None,
    top_p: float | None = None,
) -> Any:
    """One of the built-in patterns with ``agents`` agents and its rounds option.

    ``None`` means the pattern's default (3 agents; its own number of rounds). Options the
    pattern does not read are ignored here; ``accord run`` refuses them before calling this.

    Raises:
        ConfigError: an unknown pattern (with the closest name), or an option out of range.
    """
    import accord
    from accord.graphs import patterns as p

    if pattern not in PATTERN_OPTIONS:
        import difflib

        close = difflib.get_close_matches(pattern, PATTERNS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown pattern {pattern!r}.{hint} Patterns: {', '.join(PATTERNS)}; "
            "or give FILE.py:graph."
        )
    n = 3 if agents is None else agents
    least = MIN_AGENTS.get(pattern, 1)
    if n < least:
        raise ConfigError(f"--agents must be {least} or more for {pattern}, not {n}.")
    if rounds is not None and rounds < 1:
        raise ConfigError(f"--rounds must be 1 or more, not {rounds}.")
    sampling: dict[str, Any] = {
        "temperature": temperature,
        "max_tokens": max_tokens,
        "top_p": top_p,
    }
    if pattern == "debate":
        return p.debate(
            [accord.Debater(f"debater_{i + 1}", **sampling) for i in range(n)], rounds=rounds or 3
        )
    if pattern == "critique":
        return p.critique_revise(
            accord.Solver("solver", **sampling),
            accord.Critic("critic", **sampling),
            max_rounds=rounds or 3,
        )
    if pattern == "plan_solve_verify":
        return p.plan_solve_verify(
            accord.Planner("planner", **sampling),
            accord.Solver("solver", **sampling),
            accord.Verifier("verifier", **sampling),
            max_rounds=rounds or 2,
        )
    if pattern == "moa":
        proposers = [accord.Agent(f"proposer_{i + 1}", **sampling) for i in range(n)]
        return p.mixture_of_agents(
            proposers, accord.Aggregator("aggregator", **sampling), layers=rounds or 2
        )
    if pattern == "round_robin":
        return p.round_robin(
            [accord.Agent(f"agent_{i + 1}", **sampling) for i in range(n)],
            max_turns=rounds or 2 * n,
        )
    if pattern == "judge_panel":
        return p.judge_panel(
            [accord.Judge(f"judge_{i + 1}", **sampling) for i in range(n)], rounds=rounds or 1
        )
    from accord.ensemble import self_consistency

    return self_consistency(
        accord.Solver("solver", max_tokens=max_tokens, top_p=top_p),
        k=n,
        temperature=0.7 if temperature is None else temperature,
    )


def _needs_model(graph: Any) -> bool:
    """Whether some agent of the graph has no backend of its own (and so needs ``--model``)."""
    from accord.agents import Agent

    for node in graph.nodes.values():
        agent = node if isinstance(node, Agent) else getattr(node, "agent", None)
        if isinstance(agent, Agent) and agent._backend is None:
            return True
        inner = getattr(node, "graph", None)
        if inner is not None and _needs_model(inner):
            return True
    return False


def _answer(result: Any) -> str:
    out = result.output
    if out is None:
        return ""
    answer = getattr(out.payload, "answer", None)
    return str(answer) if isinstance(answer, str) and answer else out.text


@app.command("run")
def run_command(
    target: str = typer.Argument(..., help=f"a pattern ({', '.join(PATTERNS)}) or FILE.py:graph"),
    task: str | None = typer.Argument(
        None, help="the task, in quotes; '-' reads it from standard input"
    ),
    task_file: Path | None = typer.Option(
        None, "--task-file", "-f", help="read the task from this file ('-': standard input)"
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="'openai:NAME', 'hf:HUB_ID' or 'hf:./folder' (default: $ACCORD_MODEL or hf:Qwen/Qwen2.5-0.5B-Instruct)",
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"
    ),
    agents: int | None = typer.Option(
        None, "--agents", "-n", help="debaters, proposers, judges, samples or chat members (3)"
    ),
    rounds: int | None = typer.Option(
        None,
        "--rounds",
        "-r",
        help="debate rounds, critique/verify rounds, MoA layers or chat turns",
    ),
    temperature: float | None = typer.Option(
        None, "--temperature", "-t", help="sampling temperature for every agent"
    ),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", help="the most tokens one reply may have"
    ),
    top_p: float | None = typer.Option(
        None, "--top-p", help="nucleus sampling for every agent (above 0, at most 1)"
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", help="seconds one model call may take ('openai:' models)"
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", help="model calls in flight at once ('openai:' models)"
    ),
    structured: str | None = typer.Option(
        None,
        "--structured",
        help="how the server constrains JSON replies: json_schema, json_object+schema, "
        "json_object or instructions ('openai:' models)",
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", help="safety limit on activations (default: the graph's own)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one machine-readable result"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the answer"),
    no_input: bool = typer.Option(
        False,
        "--no-input",
        help="never prompt: a question to a person pauses the run (answer it later with "
        "`accord runs answer`)",
    ),
) -> None:
    """Run a pattern or your own graph on a task (the task may come from stdin: '-').

    On a terminal, questions the graph asks a person (``accord.Human``, ``ctx.ask``) are
    prompted for; with ``--no-input`` (or without a terminal) the run pauses with status
    ``waiting`` instead."""
    try:
        text = read_task(task, task_file)
        if temperature is not None and not 0 <= temperature <= 2:
            raise ConfigError(f"--temperature must be between 0 and 2, not {temperature}.")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"--max-tokens must be 1 or more, not {max_tokens}.")
        if top_p is not None and not 0 < top_p <= 1:
            raise ConfigError(f"--top-p must be above 0 and at most 1, not {top_p}.")
        if max_steps is not None and max_steps < 1:
            raise ConfigError(f"--max-steps must be 1 or more, not {max_steps}.")
        from_file = target.endswith(".py") or ".py:" in target
        if from_file or target in PATTERN_OPTIONS:
            check_pattern_options("" if from_file else target, {"agents": agents, "rounds": rounds})
        if from_file:
            graph = load_graph(target)
            apply_sampling(graph, temperature, max_tokens, top_p)
        else:
            graph = build_pattern(
                target, agents, rounds, temperature=temperature, max_tokens=max_tokens, top_p=top_p
            )
            # Recorded with the run: `accord runs resume ID` builds the same graph again.
            graph.origin = {"pattern": target, "agents": agents, "rounds": rounds}
            sampling = {"temperature": temperature, "max_tokens": max_tokens, "top_p": top_p}
            graph.origin.update({k: v for k, v in sampling.items() if v is not None})
        graph.validate()
        needs_model = model or base_url or not from_file or _needs_model(graph)
        backend_flags = timeout is not None or concurrency is not None or structured is not None
        if backend_flags and not needs_model:
            raise ConfigError(
                "--timeout, --concurrency and --structured configure the --model backend, but "
                "every agent of this graph has its own backend. Give --model or remove them."
            )
        backend = (
            resolve_model(
                model, base_url, timeout=timeout, concurrency=concurrency, structured=structured
            )
            if needs_model
            else None
        )
    except UsageError as exc:
        raise _fail(str(exc), 2) from None
    except KeyboardInterrupt:  # Ctrl-C while the graph or the backend is still being set up
        _err.print("cancelled")
        raise typer.Exit(130) from None
    prompt = not (no_input or as_json) and sys.stdin.isatty() and sys.stdout.isatty()
    live = not (as_json or quiet or prompt) and sys.stdout.isatty()
    try:
        result = asyncio.run(_run(graph, text, backend, max_steps, live, prompt))
    except KeyboardInterrupt:
        _err.print("cancelled")
        raise typer.Exit(130) from None
    except UsageError as exc:
        raise _fail(str(exc), 2) from None
    except AccordError as exc:
        if as_json:
            print(
                json.dumps({"status": "failed", "error": type(exc).__name__, "message": str(exc)})
            )
        raise _fail(f"{type(exc).__name__}: {exc}", 1) from None
    if as_json:
        print(json.dumps(_json_result(result), indent=2))
    elif result.status == "waiting":
        _print_waiting(result)
    elif quiet:
        print(plain(_answer(result)))
    else:
        from accord._view import print_summary

        print_summary(console(), result, _answer(result))


def _json_result(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = result.model_dump(mode="json")
    data["answer"] = _answer(result)
    data["usage"]["total_tokens"] = result.usage.total_tokens
    return data


def _print_waiting(result: Any) -> None:
    """Say which questions a waiting run waits for, and how to answer them."""
    print(f"run {plain(result.run_id)} is waiting for a person's answer:")
    for q in result.questions:
        print(f"  {plain(q.id)}: {plain(q.question)}")
        print(f"    accord runs answer {plain(result.run_id)} {plain(q.id)} VALUE --resume")


async def _run(
    graph: Any, task: str, backend: Any, max_steps: int | None, live: bool, prompt: bool = False
) -> Any:
    from accord.store import command_store  # the command records its runs (`accord runs`)

    if prompt:  # questions to a person are asked on this terminal
        from accord.runtime import HANDLER, terminal_asker

        HANDLER.set(terminal_asker())
    store = command_store()
    # Without --max-steps the graph's own limit applies (a pattern's grows with its size).
    limits: dict[str, Any] = {} if max_steps is None else {"max_steps": max_steps}
    if not live:
        return await graph.run(task, backend, store=store, **limits)
    from accord._view import LiveView

    with LiveView(graph, console()) as view:
        return await graph.run(
            task, backend, on_event=view.on_event, stream_tokens=True, store=store, **limits
        )


@app.command("graph")
def graph_command(
    target: str = typer.Argument(..., help="FILE.py:graph, or a built-in pattern name"),
    mermaid: bool = typer.Option(False, "--mermaid", help="print Mermaid source"),
    dot: bool = typer.Option(False, "--dot", help="print Graphviz DOT source"),
    png: Path | None = typer.Option(
        None, "--png", help="write a PNG (needs Graphviz's 'dot' program)"
    ),
) -> None:
    """Draw a graph (Mermaid by default)."""
    try:
        graph = (
            load_graph(target)
            if target.endswith(".py") or ".py:" in target
            else build_pattern(target)
        )
        graph.validate()
        if png is not None:
            _write_png(graph.to_dot(), png)
            return
    except UsageError as exc:
        raise _fail(str(exc), 2) from None
    print(plain(graph.to_dot() if dot and not mermaid else graph.to_mermaid()), end="")


def _write_png(dot_source: str, out: Path) -> None:
    exe = shutil.which("dot")
    if exe is None:
        raise ConfigError(
            "--png needs Graphviz's 'dot' program (apt-get install graphviz); or use --dot / --mermaid."
        )
    done = subprocess.run(
        [exe, "-Tpng", "-o", str(out)],
        input=dot_source,
        text=True,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise ConfigError(f"dot failed: {done.stderr.strip()[:500]}")


def _add_subcommands() -> None:
    from accord.batch.cli import register as register_batch
    from accord.merge.cli import register as register_merge
    from accord.serve.cli import register as register_serve
    from accord.store.cli import register as register_runs

    register_batch(app)
    register_merge(app)
    register_runs(app)
    register_serve(app)


_add_subcommands()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
