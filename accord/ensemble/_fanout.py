"""Fan-out of concurrent model calls that never outlives its caller.

Every ensemble method that asks a model several things at once goes through :func:`fan_out`. It
runs the calls in an :class:`asyncio.TaskGroup`: when one call fails, the others are cancelled
and awaited *before* the error propagates, so no model call is still running (or starts) after
the method, the node or ``graph.run`` that made it has raised. (``asyncio.gather`` would raise at
the first failure and leave the siblings running, still spending the run's budget.)

The caller sees the failing call's own exception, not an ``ExceptionGroup``: when several calls
fail at once the first to fail is raised. A cancellation of the caller cancels every call.

Example::

    texts = await fan_out(ask(model, model.request(p), ledger) for p in prompts)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

__all__ = ["fan_out"]

T = TypeVar("T")


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


async def fan_out(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Await ``calls`` concurrently; return their results in order.

    Raises:
        BaseException: the first call's error, after every other call was cancelled and finished.
    """
    aws = list(calls)
    if len(aws) == 1:
        return [await aws[0]]
    error: BaseException | None = None
    tasks: list[asyncio.Task[T]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_wrap(a)) for a in aws]
    except BaseExceptionGroup as exc:
        error = _first_leaf(exc)
    if error is not None:
        # Raised outside the ``except`` block, so the error keeps its own ``__cause__`` and
        # ``__context__`` instead of gaining the group as context.
        raise error
    return [t.result() for t in tasks]


async def _wrap(aw: Awaitable[T]) -> T:
    return await aw
