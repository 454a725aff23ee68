"""The ``accord`` command.

``accord run PATTERN "task"`` runs a built-in pattern (or ``accord run FILE.py:graph "task"`` a
graph of yours) with a live view of the agents at work; ``accord graph FILE.py:graph`` draws a
graph; ``accord runs ...`` reads the run store; ``accord merge`` merges model weights.

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
from rich.console import Console

from accord.errors import AccordError, ConfigError, UsageError

app = typer.Typer(
    name="accord",
    no_args_is_help=True,
    add_completion=False,
    help="Make several language models work together: debate, critique, plan-solve-verify, "
    "mixture-of-agents, ensembles, merging.",
)

_err = Console(stderr=True)

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
    _err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


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


def resolve_model(model: str | None, base_url: str | None) -> Any:
    """The backend for ``--model``/``--base-url`` (``ACCORD_MODEL`` or the default model)."""
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
        options["base_url"] = base_url
    return backend(name, **options)


def build_pattern(pattern: str, agents: int, rounds: int | None) -> Any:
    """One of the built-in patterns with ``agents`` agents and its rounds option."""
    import accord
    from accord.graphs import patterns as p

    if agents < 1:
        raise ConfigError(f"--agents must be 1 or more, not {agents}.")
    if pattern == "debate":
        return p.debate(
            [accord.Debater(f"debater_{i + 1}") for i in range(max(agents, 2))], rounds=rounds or 3
        )
    if pattern == "critique":
        return p.critique_revise(
            accord.Solver("solver"), accord.Critic("critic"), max_rounds=rounds or 3
        )
    if pattern == "plan_solve_verify":
        return p.plan_solve_verify(
            accord.Planner("planner"),
            accord.Solver("solver"),
            accord.Verifier("verifier"),
            max_rounds=rounds or 2,
        )
    if pattern == "moa":
        proposers = [accord.Agent(f"proposer_{i + 1}") for i in range(agents)]
        return p.mixture_of_agents(proposers, accord.Aggregator("aggregator"), layers=rounds or 2)
    if pattern == "round_robin":
        return p.round_robin(
            [accord.Agent(f"agent_{i + 1}") for i in range(agents)], max_turns=rounds or 2 * agents
        )
    if pattern == "judge_panel":
        return p.judge_panel(
            [accord.Judge(f"judge_{i + 1}") for i in range(max(agents, 2))], rounds=rounds or 1
        )
    if pattern == "self_consistency":
        from accord.ensemble import self_consistency

        return self_consistency(accord.Solver("solver", temperature=0.7), k=max(agents, 2))
    import difflib

    close = difflib.get_close_matches(pattern, PATTERNS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"unknown pattern {pattern!r}.{hint} Patterns: {', '.join(PATTERNS)}; or give FILE.py:graph."
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
    task: str = typer.Argument(..., help="the task, in quotes"),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="'openai:NAME', 'hf:HUB_ID' or 'hf:./folder' (default: $ACCORD_MODEL or hf:Qwen/Qwen2.5-0.5B-Instruct)",
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"
    ),
    agents: int = typer.Option(
        3, "--agents", "-n", help="debaters, proposers, judges or chat members"
    ),
    rounds: int | None = typer.Option(
        None,
        "--rounds",
        "-r",
        help="debate rounds, critique/verify rounds, MoA layers or chat turns",
    ),
    max_steps: int = typer.Option(50, "--max-steps", help="safety limit on activations"),
    as_json: bool = typer.Option(False, "--json", help="print one machine-readable result"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the answer"),
) -> None:
    """Run a pattern or your own graph on a task."""
    try:
        from_file = target.endswith(".py") or ".py:" in target
        graph = load_graph(target) if from_file else build_pattern(target, agents, rounds)
        if not from_file:  # recorded with the run: `accord runs resume ID` builds it again
            graph.origin = {"pattern": target, "agents": agents, "rounds": rounds}
        graph.validate()
        needs_model = model or base_url or not from_file or _needs_model(graph)
        backend = resolve_model(model, base_url) if needs_model else None
    except UsageError as exc:
        raise _fail(str(exc), 2) from None
    live = not (as_json or quiet) and sys.stdout.isatty()
    try:
        result = asyncio.run(_run(graph, task, backend, max_steps, live))
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
    elif quiet:
        print(_answer(result))
    else:
        from accord._view import print_summary

        print_summary(Console(), result, _answer(result))


def _json_result(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = result.model_dump(mode="json")
    data["answer"] = _answer(result)
    data["usage"]["total_tokens"] = result.usage.total_tokens
    return data


async def _run(graph: Any, task: str, backend: Any, max_steps: int, live: bool) -> Any:
    from accord.store import command_store  # the command records its runs (`accord runs`)

    store = command_store()
    if not live:
        return await graph.run(task, backend, max_steps=max_steps, store=store)
    from accord._view import LiveView

    with LiveView(graph) as view:
        return await graph.run(
            task,
            backend,
            max_steps=max_steps,
            on_event=view.on_event,
            stream_tokens=True,
            store=store,
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
            else build_pattern(target, 3, None)
        )
        graph.validate()
        if png is not None:
            _write_png(graph.to_dot(), png)
            return
    except UsageError as exc:
        raise _fail(str(exc), 2) from None
    print(graph.to_dot() if dot and not mermaid else graph.to_mermaid(), end="")


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
    from accord.merge.cli import register as register_merge
    from accord.store.cli import register as register_runs

    register_merge(app)
    register_runs(app)


_add_subcommands()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
