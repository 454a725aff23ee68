"""Writing safetensors shards as a stream, one tensor at a time.

:class:`ShardWriter` writes one output shard whose header is known in advance (names, dtypes,
shapes, from the plan), then takes the tensors one by one, casting each into a reusable buffer
of :class:`Scratch` and checking it for NaN and infinity: only the tensor being written is ever
in memory, never a whole shard.

Caveat: the tensors must arrive in the order of the header; a shard whose writer was aborted is
incomplete and must be discarded (the engine deletes its whole partial folder).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord._lazy import require
from accord.merge._safetensors import DTYPES, FLOAT_CODES, byte_view, torch_dtype

if TYPE_CHECKING:
    import torch

__all__ = ["OutEntry", "Scratch", "ShardWriter"]


def _require_torch() -> None:
    """Import torch or raise MissingDependencyError naming the ``hf`` extra."""
    require("torch", extra="hf")


@dataclass(frozen=True)
class OutEntry:
    """One tensor of an output shard."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        """Size of the data in bytes."""
        return math.prod(self.shape) * DTYPES[self.dtype][1]


def _all_finite(source: torch.Tensor, written: torch.Tensor) -> bool:
    """Whether ``written`` (``source`` cast to a float dtype) has no NaN or infinity.

    One cheap pass in the common case: if ``source``'s extremes lie within the written dtype's
    range, the cast cannot overflow (and NaN fails the comparison); otherwise check exactly.
    """
    _require_torch()
    import torch

    if source.is_floating_point():
        low, high = torch.aminmax(source)
        limit = torch.finfo(written.dtype).max
        if bool(low >= -limit) and bool(high <= limit):
            return True
    return bool(torch.isfinite(written).all())


class Scratch:
    """Reusable flat byte buffers, one per named slot, grown to the largest size asked for.

    Fresh allocations of hundreds of MB cost page faults on every tensor; reusing a slot's
    buffer does not. A slot's previous contents are overwritten by the next :meth:`get`.
    """

    def __init__(self) -> None:
        self._slots: dict[str, torch.Tensor] = {}

    def get(self, slot: str, nbytes: int) -> torch.Tensor:
        """A flat uint8 tensor of exactly ``nbytes`` bytes, backed by the slot's buffer."""
        _require_torch()
        import torch

        buffer = self._slots.get(slot)
        if buffer is None or buffer.numel() < nbytes:
            self._slots.pop(slot, None)
            del buffer
            buffer = self._slots[slot] = torch.empty(nbytes, dtype=torch.uint8)
        return buffer[:nbytes]

    def tensor(self, slot: str, code: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A tensor of dtype ``code`` and ``shape`` backed by the slot's buffer."""
        nbytes = math.prod(shape) * DTYPES[code][1]
        return self.get(slot, nbytes).view(torch_dtype(code)).reshape(shape)


class ShardWriter:
    """Write one safetensors shard whose entries are known in advance, a tensor at a time.

    The cast to the output dtype goes into one reusable buffer (the ``out`` slot of
    ``scratch``), sized to the largest tensor.
    """

    def __init__(
        self,
        path: Path,
        entries: Sequence[OutEntry],
        metadata: dict[str, str],
        scratch: Scratch | None = None,
    ):
        header: dict[str, Any] = {"__metadata__": metadata}
        offset = 0
        for entry in entries:
            header[entry.name] = {
                "dtype": entry.dtype,
                "shape": list(entry.shape),
                "data_offsets": [offset, offset + entry.nbytes],
            }
            offset += entry.nbytes
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)
        self.path = path
        self._pending: Iterator[OutEntry] = iter(entries)
        self._left = len(entries)
        self._scratch = scratch if scratch is not None else Scratch()
        self._file = path.open("wb")
        self._file.write(len(raw).to_bytes(8, "little"))
        self._file.write(raw)

    def write(self, name: str, tensor: torch.Tensor) -> bool:
        """Cast ``tensor`` to the entry's dtype and append it.

        Returns:
            False when a floating-point value is (or became, by the cast) NaN or infinite; the
            tensor is still written and the caller decides.
        """
        _require_torch()

        entry = next(self._pending)
        if entry.name != name or tuple(tensor.shape) != entry.shape:
            raise RuntimeError(
                f"writer expected {entry.name} {entry.shape}, got {name} {tuple(tensor.shape)}"
            )
        self._left -= 1
        if entry.nbytes == 0:
            return True
        raw = self._scratch.get("out", entry.nbytes)
        view = raw.view(torch_dtype(entry.dtype)).reshape(entry.shape)
        view.copy_(tensor)
        finite = entry.dtype not in FLOAT_CODES or _all_finite(tensor, view)
        self._file.write(byte_view(raw))
        return finite

    def close(self) -> None:
        """Finish the shard.

        Raises:
            RuntimeError: tensors the header promised were not written.
        """
        self._file.close()
        if self._left:
            raise RuntimeError(f"{self.path}: {self._left} tensor(s) never written")

    def abort(self) -> None:
        """Close the file without the completeness check (the shard is being discarded)."""
        self._file.close()
