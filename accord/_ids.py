"""Random ids for runs and store leases, made without a system call per id.

``os.urandom`` and ``uuid.uuid4`` make a system call each time; on a busy event loop whose store
writer thread wants the GIL, each such call can hand the GIL over and wait to get it back. Ids
here come from a generator seeded once per process from ``os.urandom`` (and again in a forked
child, so parent and child never share a sequence). They are unique, not secret.
"""

from __future__ import annotations

import os
import random

__all__ = ["new_id"]

_rng = random.Random(os.urandom(32))


def _reseed() -> None:
    _rng.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed)


def new_id(bits: int = 64) -> str:
    """A random id of ``bits`` bits, as lowercase hex (16 characters by default)."""
    return f"{_rng.getrandbits(bits):0{bits // 4}x}"
