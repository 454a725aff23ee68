"""Reading safetensors checkpoints lazily, one tensor at a time.

:class:`Checkpoint` opens a Hugging Face model folder (``model.safetensors``, or shards with
``model.safetensors.index.json``) and parses every shard's header up front, so a damaged or
missing file fails before any work; :class:`Reader` reads one tensor at a time with plain file
reads, optionally into a reusable buffer: no memory map, so no file pages count against the
process. :mod:`accord.merge._writer` writes the output.

Caveat: the format is safetensors' own (an 8-byte little-endian header length, a JSON header,
the raw little-endian data); this module reads it without the ``safetensors`` package and
assumes a little-endian machine, like that package.
"""

from __future__ import annotations

import ctypes
import json
import math
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import TracebackType
from typing import TYPE_CHECKING, Any

from accord._lazy import require
from accord.errors import MergeError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DTYPES",
    "FLOAT_CODES",
    "TensorInfo",
    "Checkpoint",
    "Reader",
    "INDEX_NAME",
    "SINGLE_NAME",
    "byte_view",
    "read_header",
    "torch_dtype",
]

DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
}
"""safetensors dtype codes accord reads and writes: torch dtype name and item size."""

FLOAT_CODES = frozenset({"F64", "F32", "F16", "BF16"})
"""Codes of the floating-point dtypes, the ones that are merged (others are copied)."""

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
_MAX_HEADER = 100_000_000


def _require_torch() -> None:
    """Import torch or raise MissingDependencyError naming the ``hf`` extra."""
    require("torch", extra="hf")


def byte_view(tensor: torch.Tensor) -> ctypes.Array[ctypes.c_char]:
    """A writable buffer over a contiguous CPU tensor's bytes (for ``readinto`` and ``write``).

    The tensor must outlive the buffer.
    """
    assert tensor.is_contiguous()
    nbytes = tensor.numel() * tensor.element_size()
    return (ctypes.c_char * nbytes).from_address(tensor.data_ptr())


def torch_dtype(code: str) -> torch.dtype:
    """The torch dtype of a safetensors code."""
    _require_torch()
    import torch

    dtype: torch.dtype = getattr(torch, DTYPES[code][0])
    return dtype


@dataclass(frozen=True)
class TensorInfo:
    """Where one stored tensor lives."""

    name: str
    dtype: str
    """safetensors code (``BF16``, ``F32``...)."""
    shape: tuple[int, ...]
    path: Path
    offset: int
    """Absolute byte offset of the data in ``path``."""
    nbytes: int

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Parse and check one safetensors file's header.

    Raises:
        MergeError: the file is missing, unreadable, truncated or not safetensors.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if length < 2 or length > min(size - 8, _MAX_HEADER):
                raise MergeError(
                    f"{path} is not a safetensors file (bad header length); re-save or re-download it"
                )
            header = json.loads(f.read(length))
    except OSError as exc:
        raise MergeError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MergeError(f"{path} is not a safetensors file (its header is not JSON)") from exc
    if not isinstance(header, dict):
        raise MergeError(f"{path} is not a safetensors file (its header is not a JSON object)")
    data_start = 8 + length
    infos: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            code = entry["dtype"]
            shape = tuple(int(d) for d in entry["shape"])
            start, end = (int(x) for x in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise MergeError(f"{path}: malformed header entry for tensor {name!r}") from exc
        if code not in DTYPES:
            raise MergeError(f"{path}: tensor {name!r} has dtype {code}, which accord cannot merge")
        nbytes = math.prod(shape) * DTYPES[code][1]
        if end - start != nbytes or start < 0 or data_start + end > size:
            raise MergeError(
                f"{path} is truncated or damaged: tensor {name!r} lies outside the file; "
                "re-save or re-download it"
            )
        infos[name] = TensorInfo(name, code, shape, path, data_start + start, nbytes)
    return infos


class Checkpoint:
    """One model folder: its ``config.json`` and the headers of its safetensors files."""

    def __init__(self, folder: Path, config: dict[str, Any], tensors: dict[str, TensorInfo]):
        self.folder = folder
        self.config = config
        self.tensors = tensors

    @classmethod
    def open(cls, folder: str | Path) -> Checkpoint:
        """Open a model folder and check that every weight file is readable.

        Raises:
            MergeError: not a folder, no ``config.json``, no safetensors weights, a shard missing
                or damaged, or the index and the shards disagree.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise MergeError(
                f"model {str(folder)!r} is not a local folder; accord merges local checkpoints "
                "(download hub models first)"
            )
        config = _read_json(folder / "config.json", what="model config")
        index_path = folder / INDEX_NAME
        if index_path.is_file():
            tensors = _read_sharded(folder, index_path)
        elif (folder / SINGLE_NAME).is_file():
            tensors = read_header(folder / SINGLE_NAME)
        else:
            files = sorted(folder.glob("*.safetensors"))
            if len(files) != 1:
                found = (
                    "several safetensors files but no index" if files else "no safetensors weights"
                )
                raise MergeError(
                    f"model {str(folder)!r} has {found}; accord reads model.safetensors or shards "
                    f"listed in {INDEX_NAME} (convert .bin checkpoints with save_pretrained)"
                )
            tensors = read_header(files[0])
        return cls(folder, config, tensors)

    @property
    def vocab_size(self) -> int | None:
        """``vocab_size`` from the config (or its ``text_config``), when it is there."""
        for config in (self.config, self.config.get("text_config")):
            if isinstance(config, dict) and isinstance(config.get("vocab_size"), int):
                value: int = config["vocab_size"]
                return value
        return None


class Reader:
    """Reads tensors by their :class:`TensorInfo`, keeping each weight file open once.

    Use as a context manager so file handles are released.
    """

    def __init__(self) -> None:
        self._handles: dict[Path, BufferedReader] = {}

    def read(self, info: TensorInfo, into: torch.Tensor | None = None) -> torch.Tensor:
        """Read one tensor in its stored dtype (never a view of the file).

        Args:
            info: the tensor.
            into: a flat uint8 buffer of at least ``info.nbytes`` bytes to read into (the result
                is a view of it); a new tensor when None.

        Raises:
            MergeError: the file could not be read.
        """
        _require_torch()
        import torch

        dtype = torch_dtype(info.dtype)
        if info.nbytes == 0:
            return torch.empty(info.shape, dtype=dtype)
        raw = torch.empty(info.nbytes, dtype=torch.uint8) if into is None else into[: info.nbytes]
        try:
            handle = self._handles.get(info.path)
            if handle is None:
                handle = self._handles[info.path] = info.path.open("rb")
            handle.seek(info.offset)
            got = handle.readinto(byte_view(raw))
        except OSError as exc:
            raise MergeError(f"cannot read tensor {info.name!r} from {info.path}: {exc}") from exc
        if got != info.nbytes:
            raise MergeError(f"{info.path} ended early while reading tensor {info.name!r}")
        return raw.view(dtype).reshape(info.shape)

    def close(self) -> None:
        """Close the open weight files."""
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _read_json(path: Path, *, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MergeError(f"{path.parent} has no {path.name}, so it is not a model folder") from exc
    except (OSError, ValueError) as exc:
        raise MergeError(f"cannot read the {what} {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise MergeError(f"the {what} {path} is not a JSON object")
    return data


def _shard_path(folder: Path, index_path: Path, file_name: str) -> Path:
    """``folder / file_name``, refusing a name that leaves the folder (absolute, ``..``).

    Names are checked as written, so a shard that is a symlink (as in a hub cache) still works.
    """
    name = file_name.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if not name or name.startswith("/") or PureWindowsPath(file_name).drive or ".." in parts:
        raise MergeError(
            f"{index_path} lists the shard {file_name!r}, a path outside the model folder "
            f"{str(folder)!r}; shard names must be files inside it. Fix or regenerate the index"
        )
    return folder / name


def _read_sharded(folder: Path, index_path: Path) -> dict[str, TensorInfo]:
    index = _read_json(index_path, what="weight index")
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise MergeError(f"{index_path} has no weight_map")
    tensors: dict[str, TensorInfo] = {}
    if not all(isinstance(v, str) for v in weight_map.values()):
        raise MergeError(f"{index_path}: every weight_map value must be a shard file name")
    for file_name in sorted(set(weight_map.values())):
        path = _shard_path(folder, index_path, file_name)
        if not path.is_file():
            raise MergeError(f"{index_path} lists {file_name}, which is missing from {folder}")
        for name, info in read_header(path).items():
            if weight_map.get(name) == file_name:
                tensors[name] = info
    missing = [n for n in weight_map if n not in tensors]
    if missing:
        raise MergeError(
            f"{index_path} maps {len(missing)} tensor(s) to files that do not hold them, "
            f"e.g. {missing[0]!r}"
        )
    return tensors
