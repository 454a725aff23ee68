"""``Graph.run_sync`` keeps one event loop per thread, so backends keep their HTTP clients."""

from __future__ import annotations

import asyncio
import threading

import pytest

import accord
from accord.backends.base import Capabilities, Choice, Completion, Request
from accord.messages import Usage


class _ClientBackend:
    """Like OpenAIBackend: an HTTP client made on first use, bound to the loop it was made on."""

    capabilities = Capabilities()

    def __init__(self) -> None:
        self.clients: list[asyncio.AbstractEventLoop] = []

    async def complete(self, request: Request) -> Completion:
        loop = asyncio.get_running_loop()
        if not self.clients:
            self.clients.append(loop)  # "a client": a connection pool tied to this loop
        if self.clients[0] is not loop or loop.is_closed():
            raise RuntimeError("Event loop is closed")  # what httpx says on a foreign loop
        return Completion(choices=(Choice(text="ok"),), usage=Usage(requests=1))


def test_run_sync_calls_reuse_one_loop_so_a_backend_keeps_its_client() -> None:
    model = _ClientBackend()
    graph = accord.Graph("g").add(accord.Agent("a"))
    first = graph.run_sync("one", model)
    second = graph.run_sync("two", model)
    assert first.text == second.text == "ok"
    assert len(model.clients) == 1


def test_run_sync_in_another_thread_gets_that_threads_own_loop() -> None:
    model = _ClientBackend()
    graph = accord.Graph("g").add(accord.Agent("a"))
    graph.run_sync("here", model)
    errors: list[BaseException] = []

    def elsewhere() -> None:
        try:
            graph.run_sync("there", _ClientBackend())
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=elsewhere)
    worker.start()
    worker.join(30)
    assert errors == []


async def test_run_sync_inside_a_running_loop_is_a_usage_error() -> None:
    graph = accord.Graph("g").add(accord.Agent("a"))
    with pytest.raises(accord.UsageError, match="await graph.run"):
        graph.run_sync("task", _ClientBackend())
