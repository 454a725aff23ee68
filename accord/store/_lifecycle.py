"""What every run store does to open, flush and close itself, shared by SQLite and PostgreSQL.

A store owns a connection (``_conn``, guarded by ``_lock``) and, while runs record into it with
``"async"`` durability, a writer thread (see :mod:`accord.store._recorder`). Closing writes what
the writer holds, stops it, closes the connection and drops the store from accord's caches.

Caveat: a closed store stays closed; open the location again for a new one.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

from accord.errors import StoreError

if TYPE_CHECKING:
    from accord.store._base import RunStore

__all__ = ["StoreLifecycle"]


class StoreLifecycle:
    """``close``/``flush`` and the (async) context manager of a run store."""

    location: str
    closed: bool
    _lock: threading.RLock
    _conn: Any

    def close(self) -> None:
        """Write what the store's writer thread holds, stop it, and close the connection.

        Idempotent. The store is dropped from accord's caches (and from
        ``accord.configure(store=...)``); using it afterwards raises ``StoreError``.
        """
        if self.closed:
            return
        from accord import _config
        from accord.store import _recorder, _run

        store = cast("RunStore", self)
        _recorder.stop_writer(store)
        with self._lock:
            self.closed = True
            self._conn.close()
        _run.forget(store)
        _config.forget(store)

    def flush(self) -> None:
        """Block until every record handed to this store's writer is written.

        Raises:
            StoreError: the writer failed to write something since the last check.
        """
        from accord.store import _recorder

        store = cast("RunStore", self)
        _recorder.settle(store, None)
        error = _recorder.take_error(store)
        if error is not None:
            if isinstance(error, StoreError):
                raise error
            raise StoreError(f"the run store {self.location} failed to write: {error}") from error

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.close)
