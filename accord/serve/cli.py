"""``accord serve``: serve graphs as an OpenAI-compatible model and a runs API with uvicorn.

``accord serve FILE.py:graph [FILE2.py:other ...]`` or ``accord serve PATTERN``. Without an API key
(``--api-key`` or ``ACCORD_SERVE_API_KEY``) the server only binds a loopback address.

Caveat: SIGTERM (or Ctrl-C) stops accepting connections, gives running work ``--grace`` seconds
to finish, then cancels it; cancelled runs keep their finished activations in the run store.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import typer

from accord.errors import AccordError, ConfigError, UsageError

__all__ = ["register", "serve_command", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (so an unauthenticated server is not exposed)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_command(
    targets: list[str] = typer.Argument(
        ..., help="FILE.py:graph (one or more), or a built-in pattern name"
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="default backend for agents that have none"
    ),
    base_url: str | None = typer.Option(
        None, "--base-url", help="an OpenAI-compatible server for 'openai:' models"
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind"),
    port: int = typer.Option(8000, "--port", help="port to bind"),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar="ACCORD_SERVE_API_KEY",
        help="bearer token clients must send (default: $ACCORD_SERVE_API_KEY)",
        show_envvar=False,
    ),
    store: Path | None = typer.Option(
        None, "--store", help="run store (default: $ACCORD_STORE or ./.accord/runs.db)"
    ),
    max_runs: int = typer.Option(64, "--max-runs", help="runs at once; more get 429"),
    max_body: int = typer.Option(1_000_000, "--max-body-bytes", help="largest request body"),
    timeout: float = typer.Option(
        600.0, "--timeout", help="seconds a chat-completions run may take (0: no limit)"
    ),
    grace: float = typer.Option(
        30.0, "--grace", help="seconds running work gets to finish at shutdown"
    ),
    agents: int = typer.Option(3, "--agents", "-n", help="agents of a built-in pattern"),
    rounds: int | None = typer.Option(None, "--rounds", "-r", help="rounds of a built-in pattern"),
    otel: bool = typer.Option(
        False, "--otel", help="export OpenTelemetry spans (as ACCORD_OTEL=1 does)"
    ),
) -> None:
    """Serve graphs as an OpenAI-compatible model (POST /v1/chat/completions) and a runs API."""
    from accord._terminal import plain
    from accord.cli import _fail, _needs_model, build_pattern, load_graph, resolve_model

    try:
        if not api_key and not is_loopback(host):
            raise ConfigError(
                f"refusing to serve on {host!r} without an API key: anyone who can reach it could "
                "run your graphs. Set --api-key (or ACCORD_SERVE_API_KEY), or bind 127.0.0.1."
            )
        graphs = []
        for target in targets:
            from_file = target.endswith(".py") or ".py:" in target
            graphs.append(
                load_graph(target) if from_file else build_pattern(target, agents, rounds)
            )
        needs = model or base_url or any(_needs_model(g) for g in graphs)
        backend = resolve_model(model, base_url) if needs else None
        if otel:
            import accord

            accord.instrument()
        import accord.serve

        api = accord.serve.app(
            graphs,
            backend=backend,
            store=store,
            api_key=api_key,
            max_runs=max_runs,
            max_body_bytes=max_body,
            timeout=timeout or None,
            grace=grace,
        )
        import uvicorn
    except UsageError as exc:
        raise _fail(str(exc), 2) from None
    except ImportError:
        raise _fail("accord serve needs uvicorn: pip install 'accord[serve]'.", 2) from None
    names = ", ".join(plain(g.name) for g in graphs)
    typer.echo(f"accord serve: {names} on http://{host}:{port}/v1 (pid {os.getpid()})", err=True)
    config = uvicorn.Config(
        api,
        host=host,
        port=port,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(grace)),
        log_level="warning",
    )
    try:
        uvicorn.Server(config).run()
    except AccordError as exc:
        raise _fail(f"{type(exc).__name__}: {exc}", 1) from None


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command("serve")(serve_command)
