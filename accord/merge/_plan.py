"""Planning a merge: which inputs, which tensors, which parameters, which output shards.

:func:`build_plan` reads the config and every input's headers (never the weights), runs the
checks of :mod:`accord.merge._checks`, resolves every parameter for every tensor, and lays out
the output shards. The plan is what ``--dry-run`` prints and what the engine executes.

Caveat: layers are found by name (``...layers.N.``, ``...h.N.``, ``...blocks.N.``); tensors
outside them (embeddings, final norm, LM head) take their slice-independent values at the first
point of any gradient, and with several slices the embeddings follow the first slice and the
other outside tensors the last, as in mergekit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from accord.errors import MergeConfigError
from accord.merge._checks import (
    check_architecture,
    check_disk,
    check_out_dir,
    check_out_not_input,
    check_tensors,
)
from accord.merge._config import MergeConfig, Setting
from accord.merge._params import MethodSpec, Value, check_config, resolve
from accord.merge._safetensors import DTYPES, FLOAT_CODES, SINGLE_NAME, Checkpoint, TensorInfo

__all__ = ["Source", "TensorTask", "MergePlan", "build_plan"]

_LAYER = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)\.")
_PRE = ("embed", "wte", "wpe", "word_embeddings")

Scope = Mapping[str, Setting] | None


@dataclass(frozen=True)
class Source:
    """One input model."""

    label: str
    """As written in the config."""
    path: Path
    role: Literal["base", "model"]


@dataclass(frozen=True)
class TensorTask:
    """How one output tensor is made."""

    name: str
    shape: tuple[int, ...]
    out_dtype: str
    """safetensors code written."""
    inputs: tuple[TensorInfo, ...]
    """The stored tensors: the base first when the method has one, then each model."""
    shared: Mapping[str, Value]
    """Parameters with one value for the tensor (``t``, ``lambda``, ``normalize``...)."""
    per_model: tuple[Mapping[str, Value], ...]
    """Parameters per non-base model (``weight``, ``density``)."""
    merge: bool
    """False: a non-float tensor, copied (after checking every model holds the same values)."""
    rows: int | None = None
    """With ``vocab_policy: base``: rows to keep (inputs are cut, or padded with the rows of the
    reference model, the plan's ``reference_index``)."""
    layer: int | None = None

    @property
    def out_bytes(self) -> int:
        """Bytes this tensor takes in the output."""
        size = DTYPES[self.out_dtype][1]
        for dim in self.shape:
            size *= dim
        return size


@dataclass(frozen=True)
class _Segment:
    """A range of layers with its own parameter scopes (one per slice)."""

    start: int
    end: int
    shared: Scope
    per_model: Mapping[Path, Scope] = field(default_factory=dict)


@dataclass(frozen=True)
class MergePlan:
    """A checked merge, ready to run; :meth:`describe` is what ``--dry-run`` prints."""

    config: MergeConfig
    method: MethodSpec
    base: Source | None
    models: tuple[Source, ...]
    """Non-base inputs (every input for ``linear``)."""
    reference: Path
    """The model whose config (and, by default, tokenizer) the output takes."""
    reference_index: int
    """Position of the reference model in each task's ``inputs``."""
    tokenizer_from: Path
    tasks: tuple[TensorTask, ...]
    shards: tuple[tuple[str, tuple[int, ...]], ...]
    """Each output file and the indices of the tasks it holds, in order."""
    layers: int
    warnings: tuple[str, ...] = ()

    @property
    def out_bytes(self) -> int:
        """Total bytes of tensor data written."""
        return sum(t.out_bytes for t in self.tasks)

    def describe(self) -> str:
        """A human-readable summary: inputs, output, parameters, warnings."""
        lines = [f"method      {self.method.name}"]
        if self.base is not None:
            lines.append(f"base        {self.base.label}")
        lines += [f"model       {m.label}" for m in self.models]
        dtypes = sorted({t.out_dtype for t in self.tasks})
        lines.append(
            f"output      {len(self.tasks)} tensors, {self.layers} layers, "
            f"{self.out_bytes / 1e6:,.1f} MB in {len(self.shards)} shard(s), {'/'.join(dtypes)}"
        )
        lines.append(f"config from {self.reference}; tokenizer from {self.tokenizer_from}")
        if self.config.seed is not None:
            lines.append(f"seed        {self.config.seed}")
        merged = [t for t in self.tasks if t.merge]
        for spec in self.method.params:
            if spec.per_model:
                for i, model in enumerate(self.models):
                    values = [t.per_model[i][spec.name] for t in merged]
                    lines.append(f"{spec.name:<11} {_span(values)}  ({model.label})")
            else:
                lines.append(f"{spec.name:<11} {_span([t.shared[spec.name] for t in merged])}")
        lines += [f"warning     {w}" for w in self.warnings]
        return "\n".join(lines)


def _span(values: list[Value]) -> str:
    if not values:
        return "-"
    if isinstance(values[0], bool):
        kinds = sorted({str(v).lower() for v in values})
        return kinds[0] if len(kinds) == 1 else "true/false (varies by tensor)"
    low, high = min(values), max(values)
    return f"{low:g}" if low == high else f"{low:g} .. {high:g} (varies by tensor)"


def _path(label: str) -> Path:
    return Path(label).expanduser().absolute()


def _segments(config: MergeConfig, layers: int) -> list[_Segment]:
    if config.models is not None:
        scopes = {_path(m.model): m.parameters for m in config.models}
        return [_Segment(0, layers, None, scopes)]
    assert config.slices is not None
    segments: list[_Segment] = []
    expected_models: set[Path] | None = None
    for i, slice_ in enumerate(config.slices):
        ranges = {tuple(s.layer_range) for s in slice_.sources}
        models = {_path(s.model) for s in slice_.sources}
        start, end = slice_.sources[0].layer_range if slice_.sources else (0, 0)
        previous = segments[-1].end if segments else 0
        if (
            len(ranges) != 1
            or start != previous
            or end <= start
            or len(models) != len(slice_.sources)
        ):
            raise MergeConfigError(
                f"slices[{i}]: accord supports slices that split the layers into consecutive "
                "ranges, each merging the same layers of every model (one layer_range per slice, "
                f"starting where the previous ended); restacking or reordering layers "
                "(passthrough, frankenmerges) is not supported"
            )
        if expected_models is not None and models != expected_models:
            raise MergeConfigError(
                f"slices[{i}] merges other models than slices[0]; use the same models"
            )
        expected_models = models
        scopes = {_path(s.model): s.parameters for s in slice_.sources}
        segments.append(_Segment(start, end, slice_.parameters, scopes))
    if segments[-1].end != layers:
        raise MergeConfigError(
            f"the slices cover layers 0-{segments[-1].end}, but the models have {layers} layers; "
            "cover every layer"
        )
    return segments


def _tokenizer_from(config: MergeConfig, base: Source | None, models: tuple[Source, ...]) -> Path:
    """The folder the tokenizer files are copied from (the reference model unless configured)."""
    if config.tokenizer_from not in (None, "base"):
        assert config.tokenizer_from is not None
        return _path(config.tokenizer_from)
    if base is not None:
        return base.path
    if config.base_model is not None:
        return _path(config.base_model)
    return models[0].path


def _inputs(config: MergeConfig, spec: MethodSpec) -> tuple[Source | None, tuple[Source, ...]]:
    entries: list[tuple[str, bool]] = []
    if config.models is not None:
        entries = [(m.model, bool(m.parameters)) for m in config.models]
    else:
        assert config.slices is not None
        first = config.slices[0].sources if config.slices else []
        entries = [
            (
                s.model,
                any(
                    bool(x.parameters)
                    for sl in config.slices
                    for x in sl.sources
                    if _path(x.model) == _path(s.model)
                ),
            )
            for s in first
        ]
    paths = [_path(label) for label, _ in entries]
    if len(set(paths)) != len(paths):
        raise MergeConfigError("a model is listed twice; list each model once")
    base_path = _path(config.base_model) if config.base_model else None
    if not spec.needs_base:
        if base_path is not None and base_path not in paths:
            raise MergeConfigError(
                f"{spec.name} merges every listed model, and base_model {config.base_model!r} is "
                "not among them: add it to 'models' (with its weight) or remove base_model"
            )
        models = tuple(
            Source(label, path, "model") for (label, _), path in zip(entries, paths, strict=True)
        )
        if len(models) < spec.min_models:
            raise MergeConfigError(f"{spec.name} needs at least {spec.min_models} models")
        return None, models
    if base_path is None:
        if spec.name == "slerp" and len(entries) == 2:
            base_path = paths[0]
        else:
            raise MergeConfigError(
                f"{spec.name} needs base_model: the model task vectors are measured from"
            )
    base_label = config.base_model or entries[0][0]
    for (label, has_params), path in zip(entries, paths, strict=True):
        if path == base_path and has_params:
            raise MergeConfigError(
                f"parameters are set on the base model {label!r}, but {spec.name} does not use "
                "per-model parameters for the base; remove them"
            )
    models = tuple(
        Source(label, path, "model")
        for (label, _), path in zip(entries, paths, strict=True)
        if path != base_path
    )
    count = len(models)
    if count < spec.min_models or (spec.max_models is not None and count > spec.max_models):
        wanted = (
            f"exactly {spec.min_models}"
            if spec.max_models == spec.min_models
            else f"at least {spec.min_models}"
        )
        raise MergeConfigError(f"{spec.name} needs {wanted} model(s) besides the base, got {count}")
    return Source(base_label, base_path, "base"), models


def _layer_count(checkpoint: Checkpoint) -> int:
    indices = [int(m.group(1)) for name in checkpoint.tensors if (m := _LAYER.search(name))]
    return max(indices) + 1 if indices else 0


def build_plan(
    config: MergeConfig, out_dir: Path | None = None, *, overwrite: bool = False
) -> MergePlan:
    """Check a merge and plan it, reading only the inputs' headers.

    Args:
        config: a loaded config.
        out_dir: when given, also check that it is free and that its disk has room.
        overwrite: allow replacing a folder that holds files.

    Raises:
        MergeConfigError: the config is wrong or unsupported, or ``out_dir`` is taken.
        MergeError: an input is missing, unreadable or does not match the others.
    """
    spec = check_config(config)
    base, models = _inputs(config, spec)
    sources = ([base] if base else []) + list(models)
    tokenizer_from = _tokenizer_from(config, base, models)
    if out_dir is not None:
        check_out_not_input(out_dir, [*(s.path for s in sources), tokenizer_from])
        check_out_dir(out_dir, overwrite=overwrite)
    if base is not None:
        reference = base.path
    elif config.base_model is not None:  # linear: the listed base gives config and tokenizer
        reference = _path(config.base_model)
    else:
        reference = models[0].path
    reference_index = [s.path for s in sources].index(reference)
    checkpoints = {s.path: Checkpoint.open(s.path) for s in sources}
    labels = {s.path: s.label for s in sources}
    ordered = [checkpoints[reference]] + [
        checkpoints[s.path] for s in sources if s.path != reference
    ]
    check_architecture(ordered, labels)
    vocab = check_tensors(ordered, labels, vocab_policy=config.vocab_policy)
    ref = checkpoints[reference]
    layers = _layer_count(ref)
    segments = _segments(config, layers)
    out_code = config.out_dtype_code
    names = sorted(ref.tensors, key=lambda n: (str(ref.tensors[n].path), ref.tensors[n].offset))
    tasks: list[TensorTask] = []
    for name in names:
        info = ref.tensors[name]
        match = _LAYER.search(name)
        layer = int(match.group(1)) if match else None
        if layer is None:
            segment = segments[0] if any(p in name for p in _PRE) else segments[-1]
            pos = 0.0
        else:
            segment = next(s for s in segments if s.start <= layer < s.end)
            span = segment.end - segment.start
            pos = (layer - segment.start) / (span - 1) if span > 1 else 1.0
        global_scopes = (segment.shared, config.parameters)
        shared = {
            p.name: resolve(p, global_scopes, name, pos, spec.name)
            for p in spec.params
            if not p.per_model
        }
        per_model = tuple(
            {
                p.name: resolve(
                    p, (segment.per_model.get(m.path), *global_scopes), name, pos, spec.name
                )
                for p in spec.params
                if p.per_model
            }
            for m in models
        )
        floating = info.dtype in FLOAT_CODES
        tasks.append(
            TensorTask(
                name=name,
                shape=info.shape,
                out_dtype=(out_code or info.dtype) if floating else info.dtype,
                inputs=tuple(checkpoints[s.path].tensors[name] for s in sources),
                shared=shared,
                per_model=per_model,
                merge=floating,
                rows=info.shape[0] if name in vocab else None,
                layer=layer,
            )
        )
    plan = MergePlan(
        config=config,
        method=spec,
        base=base,
        models=models,
        reference=reference,
        reference_index=reference_index,
        tokenizer_from=tokenizer_from,
        tasks=tuple(tasks),
        shards=_shards(tasks, config.max_shard_size),
        layers=layers,
        warnings=tuple(_warnings(spec, tasks, vocab)),
    )
    if out_dir is not None:
        check_disk(out_dir, plan.out_bytes)
    return plan


def _shards(tasks: list[TensorTask], limit: int) -> tuple[tuple[str, tuple[int, ...]], ...]:
    groups: list[list[int]] = [[]]
    size = 0
    for i, task in enumerate(tasks):
        if groups[-1] and size + task.out_bytes > limit:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += task.out_bytes
    if len(groups) == 1:
        return ((SINGLE_NAME, tuple(groups[0])),)
    n = len(groups)
    return tuple(
        (f"model-{k + 1:05d}-of-{n:05d}.safetensors", tuple(g)) for k, g in enumerate(groups)
    )


def _warnings(spec: MethodSpec, tasks: list[TensorTask], vocab: set[str]) -> list[str]:
    found: list[str] = []
    if spec.name in ("ties", "dare_ties", "dare_linear") and all(
        m["density"] >= 1.0 for t in tasks if t.merge for m in t.per_model
    ):
        found.append(
            f"density is 1.0 everywhere, so {spec.name} keeps every entry"
            + (
                " (TIES reduces to sign election)"
                if spec.name == "ties"
                else " (nothing is dropped)"
            )
        )
    if vocab:
        found.append(
            f"vocab_policy base: {len(vocab)} vocabulary tensor(s) keep the reference's rows"
        )
    return found
