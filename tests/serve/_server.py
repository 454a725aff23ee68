"""Helpers for the serve tests: a small graph on FunctionBackend, and a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

import accord
from accord.backends.base import Request
from accord.testing import FunctionBackend


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def chain(name: str = "trio", agents: tuple[str, ...] = ("a", "b", "c")) -> accord.Graph:
    """Three agents in a row; the last one's reply is the answer."""
    graph = accord.Graph(name)
    graph.add(*(accord.Agent(n) for n in agents))
    for src, dst in zip(agents, agents[1:], strict=False):
        graph.connect(src, dst)
    return graph


class Recorder:
    """A FunctionBackend model that sleeps, answers, and records calls started, finished and
    cancelled."""

    def __init__(self, delay: float = 0.0, answer: str = "the answer is 42") -> None:
        self.delay = delay
        self.answer = answer
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.backend = FunctionBackend(self, name="function:fake-1")

    async def __call__(self, request: Request) -> str:
        key = f"{request.run_id}/{request.agent}/{request.round}"
        self.started.append(key)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        self.finished.append(key)
        if request.agent == "c":
            return self.answer
        return f"{request.agent} says: think step by step"


@contextmanager
def serving(api: Any) -> Iterator[str]:
    """Serve ``api`` with uvicorn on 127.0.0.1 in a thread; yields the base URL (…/v1)."""
    port = free_port()
    config = uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
