"""Serve graphs as an OpenAI-compatible model and a runs API (``accord serve``).

``accord.serve.app(graphs)`` returns an ASGI app (Starlette) to run with uvicorn or to mount in
your own server: ``POST /v1/chat/completions`` with ``model`` set to a graph's name runs that
graph on the last user message and answers with its output (streamed as OpenAI chunks with
``stream: true``); ``/v1/runs`` starts, follows, cancels and traces long runs. Every run is
recorded in the run store, so finished work survives a restart.

Example::

    import accord.serve, uvicorn
    api = accord.serve.app([my_graph], backend=accord.backend("openai:gpt-4o-mini"))
    uvicorn.run(api, host="127.0.0.1", port=8000)

Caveat: needs the ``serve`` extra (``pip install 'accord[serve]'``). When the app is mounted inside
another app, its lifespan (which drains runs at shutdown) runs only if the outer app forwards it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from accord.errors import ConfigError, MissingDependencyError

__all__ = ["app"]


def app(
    graphs: Any,
    *,
    backend: Any = None,
    store: Any = None,
    api_key: str | None = None,
    max_runs: int = 64,
    max_body_bytes: int = 1_000_000,
    timeout: float | None = 600.0,
    grace: float = 30.0,
) -> Any:
    """An ASGI app that serves ``graphs``.

    Args:
        graphs: a Graph, a list of graphs (served under their names), or ``{name: graph}``.
        backend: the default backend (or ``"provider:model"``) for agents that have none.
        store: the run store to record into: a path or a ``RunStore`` (default ``ACCORD_STORE``,
            else ``./.accord/runs.db``).
        api_key: the bearer token clients must send (None: no auth; keep such a server on
            loopback).
        max_runs: runs at once; past it requests get 429 with ``Retry-After``.
        max_body_bytes: the largest request body accepted (413 past it).
        timeout: seconds a chat-completions run may take (504 past it; None: no limit).
        grace: seconds running work gets to finish at shutdown before it is cancelled (a
            cancelled run keeps its finished activations and can be resumed).

    Raises:
        MissingDependencyError: starlette is not installed.
        ConfigError: no graphs, two graphs with one name, or a limit below 1.
        GraphError: a graph is invalid.
    """
    try:
        import starlette  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "accord.serve needs Starlette and uvicorn: pip install 'accord[serve]'.",
            package="starlette",
            extra="serve",
        ) from exc
    from accord.graphs import Graph
    from accord.serve._app import Settings, build_app

    named = _named(graphs, Graph)
    for graph in named.values():
        graph.validate()
    if max_runs < 1 or max_body_bytes < 1:
        raise ConfigError("max_runs and max_body_bytes must be 1 or more.")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"timeout must be above 0 seconds (or None), not {timeout}.")
    if isinstance(backend, str):
        from accord.backends import backend as resolve

        backend = resolve(backend)
    settings = Settings(
        api_key=api_key or None,
        max_runs=max_runs,
        max_body_bytes=max_body_bytes,
        timeout=timeout,
        grace=grace,
    )
    return build_app(named, backend, store, settings)


def _named(graphs: Any, graph_type: type) -> dict[str, Any]:
    if isinstance(graphs, graph_type):
        graphs = [graphs]
    if isinstance(graphs, Mapping):
        pairs = list(graphs.items())
    elif isinstance(graphs, Iterable) and not isinstance(graphs, str):
        pairs = [(getattr(g, "name", None), g) for g in graphs]
    else:
        raise ConfigError(
            f"serve takes a Graph, a list of graphs or {{name: graph}}, not {type(graphs).__name__}."
        )
    named: dict[str, Any] = {}
    for name, graph in pairs:
        if not isinstance(graph, graph_type):
            raise ConfigError(f"{name!r} is a {type(graph).__name__}, not an accord.Graph.")
        if not isinstance(name, str) or not name:
            raise ConfigError("every served graph needs a name (Graph('name')).")
        if name in named:
            raise ConfigError(
                f"two graphs are named {name!r}; clients pick a graph by name. Serve them as "
                "{'name_a': graph_a, 'name_b': graph_b}."
            )
        named[name] = graph
    if not named:
        raise ConfigError("give serve at least one graph.")
    return named
