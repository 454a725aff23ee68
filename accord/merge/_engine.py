"""The streaming merge engine: runs a plan tensor by tensor and publishes the folder atomically.

For each output tensor the engine reads that tensor from each input (plain file reads), converts
it to float32, applies the method and writes the result straight into the open output shard,
whose header was laid out in the plan. Reads, conversions and the cast for writing go into
reusable buffers (one per input, plus one for raw bytes and one for the output), so peak memory
is about one float32 tensor per input plus the output tensor and the method's temporaries,
never a whole model or a whole shard.

Everything is written into a hidden folder beside ``out_dir`` (``.NAME.accord-partial-PID-...``):
weights, then the index, config, generation config and tokenizer files, then the record of the
merge (``accord_merge.yaml``). Only after the checks of :mod:`accord.merge._verify` pass is that
folder renamed to ``out_dir``. An exception or Ctrl-C removes it; a killed process leaves only the
hidden folder, which never looks like a finished model and is removed by the next merge into the
same ``out_dir``.

An output that is (or lies inside) an input model is refused, paths compared after resolving
symlinks and ``..``; an output that is a symlink is followed, so the link's target is replaced and
the link kept.

Caveat: the rename is atomic only when ``out_dir`` does not exist yet; with ``overwrite`` the old
folder is first moved aside, then deleted after the new one is in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord._lazy import require
from accord._log import get_logger
from accord.errors import MergeError
from accord.merge import _methods as methods
from accord.merge._checks import check_out_not_input, real_path
from accord.merge._plan import MergePlan, TensorTask
from accord.merge._safetensors import DTYPES, INDEX_NAME, Reader
from accord.merge._verify import verify_output
from accord.merge._writer import OutEntry, Scratch, ShardWriter

if TYPE_CHECKING:
    import torch

__all__ = ["MergeProgress", "MergeResult", "execute"]

log = get_logger(__name__)

_CONFIG_FILES = ("generation_config.json",)
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "spiece.model",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
RECORD_NAME = "accord_merge.yaml"
_PARTIAL = ".accord-partial-"


@dataclass(frozen=True)
class MergeProgress:
    """Where a running merge stands (passed to the ``progress`` callback after each tensor)."""

    tensors_done: int
    tensors_total: int
    bytes_done: int
    """Output bytes written so far."""
    bytes_total: int
    tensor: str
    """The tensor just written."""


@dataclass(frozen=True)
class MergeResult:
    """What a finished merge wrote."""

    out_dir: Path
    method: str
    tensors: int
    files: tuple[str, ...]
    """Weight files written (one, or the shards)."""
    bytes_written: int
    seconds: float


def _require_torch() -> None:
    """Import torch or raise MissingDependencyError naming the ``hf`` extra."""
    require("torch", extra="hf")


def _seed_for(seed: int, tensor: str, model: int) -> int:
    """A 63-bit seed for one (tensor, model) pair: masks do not depend on processing order."""
    digest = hashlib.blake2b(f"{seed}:{model}:{tensor}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class _Loader:
    """Reads a task's inputs as float32 into reusable buffers, applying the vocabulary policy.

    Input ``i`` always lands in scratch slot ``work{i}``, so the methods may work in place on
    what they are given; every buffer is overwritten by the next task.
    """

    def __init__(self, reader: Reader, scratch: Scratch, task: TensorTask, reference: int):
        self._reader = reader
        self._scratch = scratch
        self._task = task
        self._reference = reference

    def load(self, index: int) -> torch.Tensor:
        """Input ``index`` of the task, as float32."""
        _require_torch()
        import torch

        info = self._task.inputs[index]
        slot = f"work{index}"
        if info.dtype == "F32":
            tensor = self._reader.read(info, into=self._scratch.get(slot, info.nbytes))
        else:
            raw = self._reader.read(info, into=self._scratch.get("raw", info.nbytes))
            tensor = self._scratch.tensor(slot, "F32", info.shape).copy_(raw)
        rows = self._task.rows
        if rows is None or tensor.shape[0] == rows:
            return tensor
        if tensor.shape[0] > rows:
            return tensor[:rows].clone()
        reference = self._reader.read(self._task.inputs[self._reference])
        return torch.cat([tensor, reference[tensor.shape[0] : rows].to(torch.float32)])

    def each(self, start: int) -> Iterator[torch.Tensor]:
        """Inputs ``start``, ``start + 1``... one at a time."""
        for index in range(start, len(self._task.inputs)):
            yield self.load(index)


def _compute(plan: MergePlan, task: TensorTask, reader: Reader, scratch: Scratch) -> torch.Tensor:
    _require_torch()
    import torch

    name = plan.method.name
    loader = _Loader(reader, scratch, task, plan.reference_index)
    if not task.merge:
        first = reader.read(task.inputs[plan.reference_index])
        for info in task.inputs:
            if not torch.equal(first, reader.read(info)):
                raise MergeError(
                    f"non-float tensor {task.name!r} differs between the models "
                    f"({info.path.parent}); accord copies such tensors and cannot merge them"
                )
        return first
    shared = task.shared
    weights = [float(m.get("weight", 1.0)) for m in task.per_model]
    densities = [float(m.get("density", 1.0)) for m in task.per_model]
    lam, normalize = float(shared.get("lambda", 1.0)), bool(shared.get("normalize", False))
    if name == "linear":
        return methods.linear(loader.each(0), weights, normalize=normalize, inplace=True)
    base = loader.load(0)
    if name == "slerp":
        return methods.slerp(base, loader.load(1), float(shared["t"]), inplace=True)
    if name == "task_arithmetic":
        return methods.task_arithmetic(
            base, loader.each(1), weights, lam=lam, normalize=normalize, inplace=True
        )
    if name == "ties":
        return methods.ties(
            base, loader.each(1), weights, densities, lam=lam, normalize=normalize, inplace=True
        )
    if name in ("dare_linear", "dare_ties"):
        seed = plan.config.seed or 0
        generators = [
            torch.Generator().manual_seed(_seed_for(seed, task.name, i))
            for i in range(len(task.inputs) - 1)
        ]
        return methods.dare(
            base,
            loader.each(1),
            weights,
            densities,
            generators,
            combine="ties" if name == "dare_ties" else "linear",
            rescale=bool(shared["rescale"]),
            lam=lam,
            normalize=normalize,
            inplace=True,
        )
    if name == "model_stock":
        return methods.model_stock(
            base, list(loader.each(1)), filter_wise=bool(shared["filter_wise"])
        )
    raise AssertionError(f"no engine path for method {name}")


def _partial_dir(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}{_PARTIAL}{os.getpid()}-{secrets.token_hex(4)}"


def _remove_stale(out_dir: Path) -> None:
    """Remove partial folders of earlier merges into ``out_dir`` whose process is gone."""
    for stale in out_dir.parent.glob(f".{out_dir.name}{_PARTIAL}*"):
        pid_text = stale.name.rsplit(_PARTIAL, 1)[1].split("-", 1)[0]
        try:
            os.kill(int(pid_text), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(stale, ignore_errors=True)
            log.info("stale_partial_removed", path=str(stale))
        except PermissionError:
            continue


def _write_weights(
    plan: MergePlan, folder: Path, progress: Callable[[MergeProgress], None] | None
) -> int:
    total_bytes = plan.out_bytes
    done_bytes = 0
    done = 0
    debug = log.debug_enabled()
    metadata = {"format": "pt"}
    scratch = Scratch()
    with Reader() as reader:
        for file_name, indices in plan.shards:
            tasks = [plan.tasks[i] for i in indices]
            entries = [OutEntry(t.name, t.out_dtype, t.shape) for t in tasks]
            writer = ShardWriter(folder / file_name, entries, metadata, scratch)
            try:
                for task in tasks:
                    result = _compute(plan, task, reader, scratch)
                    if not writer.write(task.name, result):
                        raise MergeError(
                            f"the merged tensor {task.name!r} holds NaN or infinite values "
                            f"(written as {DTYPES[task.out_dtype][0]}); check the inputs and the "
                            "parameters (weights, lambda), or write a wider dtype"
                        )
                    del result
                    done += 1
                    done_bytes += task.out_bytes
                    if debug:
                        log.debug(
                            "tensor_merged", tensor=task.name, done=done, total=len(plan.tasks)
                        )
                    if progress is not None:
                        progress(
                            MergeProgress(done, len(plan.tasks), done_bytes, total_bytes, task.name)
                        )
            except BaseException:
                writer.abort()
                raise
            writer.close()
    if len(plan.shards) > 1:
        weight_map = {plan.tasks[i].name: f for f, idx in plan.shards for i in idx}
        index = {
            "metadata": {
                "total_size": total_bytes,
                "total_parameters": sum(t.out_bytes // DTYPES[t.out_dtype][1] for t in plan.tasks),
            },
            "weight_map": dict(sorted(weight_map.items())),
        }
        (folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return total_bytes


def _write_side_files(plan: MergePlan, folder: Path) -> None:
    config: dict[str, Any] = json.loads(
        (plan.reference / "config.json").read_text(encoding="utf-8")
    )
    dtypes = {t.out_dtype for t in plan.tasks if t.merge}
    if len(dtypes) == 1:
        key = "torch_dtype" if "torch_dtype" in config and "dtype" not in config else "dtype"
        config[key] = DTYPES[dtypes.pop()][0]
    (folder / "config.json").write_text(
        json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    for name in _CONFIG_FILES:
        if (plan.reference / name).is_file():
            shutil.copyfile(plan.reference / name, folder / name)
    for name in _TOKENIZER_FILES:
        if (plan.tokenizer_from / name).is_file():
            shutil.copyfile(plan.tokenizer_from / name, folder / name)


def _fingerprint(plan: MergePlan) -> dict[str, str]:
    """A digest of each input's headers and file sizes: which checkpoints were merged."""
    digests: dict[str, str] = {}
    sources = ([plan.base] if plan.base else []) + list(plan.models)
    for source in sources:
        h = hashlib.sha256()
        files = sorted(
            {
                info.path
                for task in plan.tasks
                for info in task.inputs
                if info.path.parent == source.path
            }
        )
        for path in files:
            with path.open("rb") as f:
                length = int.from_bytes(f.read(8), "little")
                h.update(path.name.encode())
                h.update(str(path.stat().st_size).encode())
                h.update(f.read(length))
        digests[source.label] = h.hexdigest()
    return digests


def _write_record(plan: MergePlan, folder: Path) -> None:
    import yaml

    record = {
        "merged_by": "accord",
        "config": plan.config.model_dump(mode="json", exclude_none=True),
        "inputs_sha256": _fingerprint(plan),
    }
    (folder / RECORD_NAME).write_text(yaml.safe_dump(record, sort_keys=False), encoding="utf-8")


def execute(
    plan: MergePlan,
    out_dir: Path,
    *,
    overwrite: bool = False,
    progress: Callable[[MergeProgress], None] | None = None,
) -> MergeResult:
    """Run a plan and publish ``out_dir`` only when everything is written and checked.

    Raises:
        MergeError: reading an input failed, a result was not finite, or a check after writing
            failed; nothing is left at ``out_dir`` (an existing folder is kept).
        MergeConfigError: ``out_dir`` is, contains or lies inside an input model.
    """
    started = time.perf_counter()
    inputs = [s.path for s in ((plan.base,) if plan.base else ()) + plan.models]
    check_out_not_input(out_dir, [*inputs, plan.tokenizer_from])
    # A symlink is followed: the merged folder replaces the link's target and the link stays.
    out_dir = real_path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out_dir)
    partial = _partial_dir(out_dir)
    partial.mkdir()
    log.info(
        "merge_started", method=plan.method.name, tensors=len(plan.tasks), out_dir=str(out_dir)
    )
    try:
        written = _write_weights(plan, partial, progress)
        _write_side_files(plan, partial)
        _write_record(plan, partial)
        verify_output(plan, partial)
        _publish(partial, out_dir, overwrite=overwrite)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        log.warning("merge_aborted", out_dir=str(out_dir), reason=type(exc).__name__)
        raise
    seconds = time.perf_counter() - started
    log.info(
        "merge_finished", method=plan.method.name, out_dir=str(out_dir), seconds=round(seconds, 2)
    )
    return MergeResult(
        out_dir=out_dir,
        method=plan.method.name,
        tensors=len(plan.tasks),
        files=tuple(f for f, _ in plan.shards),
        bytes_written=written,
        seconds=seconds,
    )


def _publish(partial: Path, out_dir: Path, *, overwrite: bool) -> None:
    if not out_dir.exists():
        partial.rename(out_dir)
        return
    if not overwrite and any(out_dir.iterdir()):
        raise MergeError(f"{out_dir} was filled by someone else during the merge; nothing replaced")
    aside = out_dir.parent / f".{out_dir.name}.accord-old-{secrets.token_hex(4)}"
    out_dir.rename(aside)
    partial.rename(out_dir)
    shutil.rmtree(aside, ignore_errors=True)
