"""Model merging: combine the weights of fine-tunes of one model into one model, tensor by tensor.

::

    from accord.merge import merge

    result = merge("ties.yaml", "out/merged")       # mergekit's YAML format
    print(result.files, result.seconds)

Methods: ``linear`` (model soups), ``slerp``, ``task_arithmetic``, ``ties``, ``dare_linear``,
``dare_ties`` and ``model_stock``, with per-model, per-tensor-name and per-layer (gradient)
parameters as in mergekit. :func:`plan` checks a merge and describes it without reading any
weights (``accord merge --dry-run``); :func:`merge` streams it: one tensor per input in memory,
computed in float32, written as (sharded) safetensors with the config, generation config and
tokenizer, published atomically, then loadable with ``from_pretrained(out_dir)``. The tensor
functions (:func:`ties`, :func:`slerp`...) are exported for use on in-memory tensors.

Caveat: importing this package is cheap; torch (the ``hf`` extra) is imported when a merge runs.
Inputs are local folders with safetensors weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from accord.merge._config import MergeConfig, load_config
from accord.merge._engine import MergeProgress, MergeResult, execute
from accord.merge._methods import (
    dare,
    drop_and_rescale,
    linear,
    model_stock,
    slerp,
    task_arithmetic,
    ties,
    trim_by_magnitude,
)
from accord.merge._params import METHODS
from accord.merge._plan import MergePlan, build_plan

__all__ = [
    # running merges
    "merge",
    "plan",
    "load_config",
    "MergeConfig",
    "MergePlan",
    "MergeProgress",
    "MergeResult",
    "METHOD_NAMES",
    # tensor-level methods
    "linear",
    "slerp",
    "task_arithmetic",
    "ties",
    "dare",
    "model_stock",
    "trim_by_magnitude",
    "drop_and_rescale",
]

METHOD_NAMES: tuple[str, ...] = tuple(METHODS)
"""The ``merge_method`` values accord implements."""

ConfigSource = MergeConfig | Mapping[str, Any] | str | Path


def plan(
    config: ConfigSource, out_dir: str | Path | None = None, *, overwrite: bool = False
) -> MergePlan:
    """Check a merge and plan it without reading weights (what ``--dry-run`` does).

    Args:
        config: a :class:`MergeConfig`, a mapping, or a YAML file path.
        out_dir: when given, also check that it is free and that its disk has room.
        overwrite: allow ``out_dir`` to hold files (they would be replaced).

    Returns:
        The plan; ``plan(...).describe()`` summarises it.

    Raises:
        MergeConfigError: the config is malformed or asks for something unsupported.
        MergeError: an input is missing, unreadable, or does not match the others.
    """
    loaded = load_config(config)
    return build_plan(loaded, Path(out_dir) if out_dir is not None else None, overwrite=overwrite)


def merge(
    config: ConfigSource,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    progress: Callable[[MergeProgress], None] | None = None,
) -> MergeResult:
    """Merge models as ``config`` says and write the result to ``out_dir``.

    Every check runs before any weight is read; the output appears at ``out_dir`` only once it
    is complete and checked (NaN/inf, tokenizer round trip, ``vocab_size``).

    Args:
        config: a :class:`MergeConfig`, a mapping, or a YAML file path.
        out_dir: the folder to create.
        overwrite: replace ``out_dir`` if it holds files.
        progress: called after each tensor with a :class:`MergeProgress`.

    Returns:
        What was written, and how long it took.

    Raises:
        MergeConfigError: the config is malformed, unsupported, or ``out_dir`` is taken.
        MergeError: an input check or a post-write check failed; nothing is published.
        MissingDependencyError: torch or transformers is missing (``pip install "accord[hf]"``).
    """
    merge_plan = plan(config, out_dir, overwrite=overwrite)
    return execute(merge_plan, Path(out_dir), overwrite=overwrite, progress=progress)
