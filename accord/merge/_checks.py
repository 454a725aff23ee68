"""Checks that run before a merge does any work.

Every input must be one architecture with the same tensor names and shapes; a difference only in
the vocabulary rows of the embeddings and LM head is its own error, unless the config chooses
``vocab_policy: base``. The output folder must be free (or ``overwrite`` chosen) and its disk
must hold the merged model. Each check raises with the facts, the rule and the fix.

Caveat: a vocabulary tensor is recognised by its shape (only the first dimension differs, and in
every model it equals that model's ``vocab_size``), not by its name.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from accord.errors import MergeConfigError, MergeError
from accord.merge._safetensors import FLOAT_CODES, Checkpoint

__all__ = [
    "check_architecture",
    "check_tensors",
    "check_out_dir",
    "check_out_not_input",
    "check_disk",
    "free_bytes",
    "real_path",
]

_MORE = 3
"""How many examples an error lists before saying "and N more"."""


def _label(checkpoint: Checkpoint, labels: dict[Path, str]) -> str:
    return labels.get(checkpoint.folder, str(checkpoint.folder))


def _examples(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MORE])
    return shown + (f" (and {len(items) - _MORE} more)" if len(items) > _MORE else "")


def check_architecture(models: Sequence[Checkpoint], labels: dict[Path, str]) -> None:
    """All models declare the same ``architectures`` and ``model_type``.

    Raises:
        MergeError: naming each model's architecture.
    """

    def arch(c: Checkpoint) -> tuple[str, str]:
        names = c.config.get("architectures") or ["?"]
        return ",".join(str(n) for n in names), str(c.config.get("model_type", "?"))

    first = arch(models[0])
    if any(arch(m) != first for m in models[1:]):
        described = "; ".join(f"{_label(m, labels)} is {arch(m)[0]} ({arch(m)[1]})" for m in models)
        raise MergeError(
            f"the models have different architectures: {described}. accord merges models of one "
            "architecture (fine-tunes of one base model)"
        )


def check_tensors(
    models: Sequence[Checkpoint], labels: dict[Path, str], *, vocab_policy: str
) -> set[str]:
    """Same tensor names and shapes in every model; dtypes that can be merged.

    Args:
        models: the inputs, the reference (config source) first.
        labels: how the config names each folder.
        vocab_policy: ``fail`` or ``base``.

    Returns:
        Names of the vocabulary tensors whose rows differ (only with ``vocab_policy: base``).

    Raises:
        MergeError: missing or extra tensors, different shapes, different vocabularies.
    """
    ref = models[0]
    problems: list[str] = []
    for other in models[1:]:
        lacks = sorted(set(ref.tensors) - set(other.tensors))
        extra = sorted(set(other.tensors) - set(ref.tensors))
        if lacks:
            problems.append(f"{_label(other, labels)} lacks {_examples(lacks)}")
        if extra:
            problems.append(
                f"{_label(other, labels)} has {_examples(extra)}, which {_label(ref, labels)} lacks"
            )
    if problems:
        raise MergeError(
            "the models do not have the same tensors: " + "; ".join(problems) + ". accord merges "
            "checkpoints with identical tensor names (same architecture and configuration, "
            "e.g. both with or both without tied embeddings)"
        )
    vocab: list[str] = []
    shapes: list[str] = []
    kinds: list[str] = []
    vocab_sizes = [m.vocab_size for m in models]
    for name, info in ref.tensors.items():
        infos = [m.tensors[name] for m in models]
        floats = {i.dtype in FLOAT_CODES for i in infos}
        if len(floats) > 1 or (False in floats and len({i.dtype for i in infos}) > 1):
            kinds.append(f"{name} ({', '.join(i.dtype for i in infos)})")
        if all(i.shape == info.shape for i in infos):
            continue
        same_rest = all(
            len(i.shape) == len(info.shape) and i.shape[1:] == info.shape[1:] for i in infos
        )
        if same_rest and all(i.shape[0] == v for i, v in zip(infos, vocab_sizes, strict=True)):
            vocab.append(name)
        else:
            described = ", ".join(
                f"{list(i.shape)} in {_label(m, labels)}"
                for i, m in zip(infos, models, strict=True)
            )
            shapes.append(f"{name} is {described}")
    if shapes:
        raise MergeError(
            f"tensor shapes differ: {_examples(shapes)}. The models must share one architecture "
            "and size to be merged"
        )
    if kinds:
        raise MergeError(
            f"tensor dtypes cannot be merged: {_examples(kinds)}. Floating-point tensors are "
            "merged and others copied, so a tensor must be floating-point in every model or have "
            "one dtype in all"
        )
    if vocab and vocab_policy != "base":
        sizes = ", ".join(
            f"{_label(m, labels)} {v}" for m, v in zip(models, vocab_sizes, strict=True)
        )
        raise MergeError(
            f"the vocabulary sizes differ ({sizes}) in {_examples(vocab)}. Merging rows of "
            "different vocabularies mixes unrelated tokens. If the ids the models share mean the "
            "same tokens (one model added tokens at the end), set 'vocab_policy: base' to keep "
            f"the vocabulary of {_label(ref, labels)}; otherwise these models cannot be merged"
        )
    return set(vocab)


def check_out_dir(out_dir: Path, *, overwrite: bool) -> None:
    """The output folder is absent or empty, or ``overwrite`` is set; it is not a file.

    Raises:
        MergeConfigError: the folder holds files and ``overwrite`` is off, or it is a file.
    """
    if out_dir.is_file():
        raise MergeConfigError(f"output path {str(out_dir)!r} is a file; choose a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise MergeConfigError(
            f"output folder {str(out_dir)!r} already holds files; choose another folder or pass "
            "overwrite=True (--overwrite) to replace it"
        )


def real_path(path: Path) -> Path:
    """``path`` absolute, with ``..`` and every symlink resolved (it need not exist)."""
    return Path(os.path.realpath(path.expanduser()))


def check_out_not_input(out_dir: Path, inputs: Iterable[Path]) -> None:
    """The output folder is not an input model, does not contain one, and is not inside one.

    Paths are compared after resolving ``..`` and symlinks, so ``sub/../m1``, a link to an input
    and the folder that holds the inputs are all caught: replacing any of them would delete or
    change an input.

    Raises:
        MergeConfigError: naming the input the output would destroy or write into.
    """
    out = real_path(out_dir)
    for given in inputs:
        source = real_path(given)
        if out == source:
            why = f"is one of the input models ({str(given)!r})"
        elif out in source.parents:
            why = f"contains the input model {str(given)!r}"
        elif source in out.parents:
            why = f"is inside the input model {str(given)!r}"
        else:
            continue
        raise MergeConfigError(
            f"output folder {str(out_dir)!r} {why}; writing there would destroy or change an "
            "input. Choose an output folder outside every input model"
        )


def free_bytes(path: Path) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_disk(out_dir: Path, needed: int) -> None:
    """The disk that will hold ``out_dir`` has room for ``needed`` bytes (plus 1%).

    Raises:
        MergeError: not enough free space.
    """
    free = free_bytes(out_dir.parent)
    wanted = needed + needed // 100 + 1_000_000
    if free < wanted:
        raise MergeError(
            f"not enough free disk for the merged model: it needs {wanted / 1e9:.2f} GB in "
            f"{out_dir.parent}, which has {free / 1e9:.2f} GB free. Free some space or choose "
            "an output folder on another disk"
        )
