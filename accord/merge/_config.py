"""The merge configuration: mergekit's YAML format, validated with pydantic.

A config names a method, the models and their parameters::

    merge_method: ties
    base_model: ./base
    models:
      - model: ./math
        parameters: {density: 0.5, weight: [0.2, 1.0]}   # a gradient over layer depth
      - model: ./code
        parameters:
          weight: [{filter: self_attn, value: 0.3}, {value: 0.7}]
    parameters: {normalize: true, lambda: 1.0}
    dtype: bfloat16

accord reads the keys mergekit defines for the methods it has (``merge_method``, ``base_model``,
``models``, ``slices`` with ``layer_range``, ``parameters``, ``dtype``, ``out_dtype``,
``tokenizer_source``, ``tokenizer.source``, ``chat_template: auto``) plus three of its own:
``seed`` (required by the DARE methods), ``vocab_policy`` and ``max_shard_size``.

Caveat: anything accord cannot honour (``modules``, layer stacking, ``tokenizer_source: union``,
LoRA references, methods it does not implement...) raises :class:`MergeConfigError` naming it;
nothing is silently ignored. Model paths are resolved against the current directory, as mergekit
does. Method-specific checks (parameter names, counts of models) run in :func:`check_config`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from accord.errors import MergeConfigError

__all__ = [
    "Conditional",
    "InputModel",
    "MergeConfig",
    "Setting",
    "Slice",
    "SliceSource",
    "TokenizerSource",
    "load_config",
    "parse_size",
    "DTYPE_NAMES",
]

Scalar = float | int | bool | str
"""A parameter value: a number, a boolean, or a numeric string such as ``"1e-3"``."""


class Conditional(BaseModel):
    """A value that applies to tensors whose name contains ``filter`` (all tensors when None)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    filter: str | None = None
    """A substring of the tensor name (``self_attn``, ``mlp``); None or ``"*"`` matches all."""
    value: Scalar | list[Scalar]
    """A scalar, or a list interpolated over layer depth (a gradient)."""


Setting = Scalar | list[Scalar] | Conditional | list[Conditional]
"""One parameter's setting: scalar, gradient, or filtered values (first match wins)."""

DTYPE_NAMES: dict[str, str] = {
    "float32": "F32",
    "fp32": "F32",
    "float": "F32",
    "float16": "F16",
    "fp16": "F16",
    "half": "F16",
    "bfloat16": "BF16",
    "bf16": "BF16",
    "float64": "F64",
}
"""Accepted dtype names and the safetensors code each writes."""

_UNSUPPORTED_METHODS = (
    "nuslerp",
    "multislerp",
    "karcher",
    "della",
    "della_linear",
    "breadcrumbs",
    "breadcrumbs_ties",
    "sce",
    "ram",
    "ramplus_tl",
    "nearswap",
    "arcee_fusion",
    "passthrough",
)


class InputModel(BaseModel):
    """One entry of ``models``: a local checkpoint folder and its own parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    """Path of a folder with ``config.json`` and safetensors weights."""
    parameters: dict[str, Setting] | None = None
    """Parameters for this model only (override the global ones)."""


class SliceSource(BaseModel):
    """One model's layer range inside a slice."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    """Path of the checkpoint folder."""
    layer_range: tuple[int, int]
    """Half-open range of layers ``[start, end)``."""
    parameters: dict[str, Setting] | None = None
    """Parameters for this model in this slice."""


class Slice(BaseModel):
    """A range of output layers and the models it is merged from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sources: list[SliceSource]
    """The models, each with the same layer range (accord does not restack layers)."""
    parameters: dict[str, Setting] | None = None
    """Parameters for every tensor of this slice."""


class TokenizerSource(BaseModel):
    """mergekit's ``tokenizer`` block; accord supports only ``source``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str | None = None
    """``base`` or the path of one of the models."""


class MergeConfig(BaseModel):
    """A validated merge configuration (mergekit's format plus accord's ``seed``,
    ``vocab_policy`` and ``max_shard_size``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    merge_method: str
    """``linear``, ``slerp``, ``task_arithmetic``, ``ties``, ``dare_linear``, ``dare_ties`` or
    ``model_stock``."""
    base_model: str | None = None
    """The model task vectors are taken against (required by all but ``linear``)."""
    models: list[InputModel] | None = None
    """The models to merge (this or ``slices``)."""
    slices: list[Slice] | None = None
    """Consecutive layer ranges with their own parameters (this or ``models``)."""
    parameters: dict[str, Setting] | None = None
    """Parameters for every model and tensor (lowest precedence)."""
    dtype: str | None = None
    """Written dtype (accord always computes in float32); the inputs' dtype when None."""
    out_dtype: str | None = None
    """Written dtype; overrides ``dtype``."""
    tokenizer_source: str | None = None
    """``base`` or a model path: where the tokenizer files come from (the base by default)."""
    tokenizer: TokenizerSource | None = None
    """mergekit's newer spelling of ``tokenizer_source``."""
    chat_template: str | None = None
    """Only ``auto`` (keep the tokenizer's own template) is supported."""
    seed: int | None = None
    """Random seed for the DARE methods (required by them, recorded with the output)."""
    vocab_policy: Literal["fail", "base"] = "fail"
    """What to do when embedding rows differ: fail, or keep the base model's vocabulary."""
    max_shard_size: int = 5_000_000_000
    """Largest output shard in bytes (YAML also takes ``"2GB"``, ``"500MiB"``)."""

    @field_validator("max_shard_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int:
        return parse_size(value)

    @field_validator("dtype", "out_dtype")
    @classmethod
    def _dtype(cls, value: str | None) -> str | None:
        if value is not None and value not in DTYPE_NAMES:
            raise ValueError(f"unknown dtype {value!r}; use one of {', '.join(DTYPE_NAMES)}")
        return value

    @model_validator(mode="after")
    def _shape(self) -> MergeConfig:
        if (self.models is None) == (self.slices is None):
            raise ValueError("give exactly one of 'models' or 'slices'")
        if self.tokenizer_source is not None and self.tokenizer is not None:
            raise ValueError("give 'tokenizer_source' or 'tokenizer', not both")
        if self.chat_template not in (None, "auto"):
            raise ValueError(
                "chat_template other than 'auto' is not supported: accord keeps the chat template "
                "of the tokenizer source; remove the key or set it to auto"
            )
        source = self.tokenizer_source or (self.tokenizer.source if self.tokenizer else None)
        if source == "union":
            raise ValueError(
                "tokenizer source 'union' is not supported: accord keeps one model's vocabulary; "
                "use 'base' (with vocab_policy: base when the vocabularies differ)"
            )
        if self.max_shard_size <= 0:
            raise ValueError("max_shard_size must be positive")
        return self

    @property
    def out_dtype_code(self) -> str | None:
        """The safetensors dtype code to write, or None to keep each input tensor's dtype."""
        name = self.out_dtype or self.dtype
        return DTYPE_NAMES[name] if name else None

    @property
    def tokenizer_from(self) -> str | None:
        """Where the tokenizer comes from (``base``, a path, or None for the default)."""
        return self.tokenizer_source or (self.tokenizer.source if self.tokenizer else None)

    def to_yaml(self) -> str:
        """The config as YAML (what accord records next to the merged model)."""
        text: str = yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)
        return text


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?)?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(value: Any) -> int:
    """Parse a byte size: an int, or ``"500MB"``, ``"2GB"``, ``"1GiB"``.

    Raises:
        ValueError: for anything else, including mergekit's ambiguous ``"5B"``.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value)
    match = _SIZE.match(text)
    if match is None or (match.group(2) is None and text.strip()[-1:].upper() == "B"):
        raise ValueError(f"not a size: {value!r}; write a byte count or e.g. '2GB', '500MiB'")
    unit = (match.group(2) or "").lower()
    factor = 1024 ** ("kmgt".index(unit[0]) + 1) if unit.endswith("i") else _UNITS[unit]
    return int(float(match.group(1)) * factor)


def _listed(value: Any) -> list[Any]:
    """``value``'s items when it is a list; else nothing (validation then reports its type)."""
    return list(value) if isinstance(value, list | tuple) else []


def _unsupported_keys(raw: Mapping[str, Any]) -> list[str]:
    """mergekit keys accord knows but cannot honour, each with the reason."""
    problems: list[str] = []
    if "modules" in raw:
        problems.append(
            "'modules' (multi-module merges) is not supported; use 'models' or 'slices'"
        )
    method = raw.get("merge_method")
    if method in _UNSUPPORTED_METHODS:
        problems.append(f"merge_method {method!r} is a mergekit method accord does not implement")
    for i, slice_ in enumerate(_listed(raw.get("slices"))):
        if isinstance(slice_, Mapping):
            for key in ("base_model", "residual_weight"):
                if key in slice_:
                    problems.append(
                        f"slices[{i}].{key} is not supported; set base_model at the top"
                    )
    tokenizer = raw.get("tokenizer")
    if isinstance(tokenizer, Mapping):
        for key in ("tokens", "pad_to_multiple_of"):
            if key in tokenizer:
                problems.append(f"tokenizer.{key} is not supported (accord keeps one vocabulary)")
    entries: list[Any] = _listed(raw.get("models"))
    for slice_ in _listed(raw.get("slices")):
        if isinstance(slice_, Mapping):
            entries.extend(_listed(slice_.get("sources")))
    if raw.get("base_model") is not None:
        entries.append({"model": raw["base_model"]})
    for entry in entries:
        model = entry.get("model") if isinstance(entry, Mapping) else None
        if isinstance(model, Mapping) or (isinstance(model, str) and "+" in model):
            problems.append(
                f"model {model!r}: LoRA references are not supported; merge the LoRA first"
            )
    return problems


def _format_validation(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (not a mergekit or accord merge setting)"
        lines.append(f"{where}: {message}")
    # A union of parameter types reports one error per alternative; keep each line once.
    return "; ".join(dict.fromkeys(lines))


def load_config(source: MergeConfig | Mapping[str, Any] | str | Path) -> MergeConfig:
    """Read and validate a merge config.

    Args:
        source: a :class:`MergeConfig`, a mapping, a YAML file path, or YAML text (a string with
            a newline, or one line with a colon that names no file).

    Returns:
        The validated config (method-specific checks run later, in :func:`check_config`).

    Raises:
        MergeConfigError: the file is missing or not YAML, or the config is malformed or asks
            for something accord does not support.
    """
    if isinstance(source, MergeConfig):
        return source
    raw: Any
    if isinstance(source, Mapping):
        raw = source
    else:
        text = _read_text(source)
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise MergeConfigError(f"merge config is not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise MergeConfigError("merge config must be a mapping with at least 'merge_method'")
    problems = _unsupported_keys(raw)
    if problems:
        raise MergeConfigError(
            "merge config asks for what accord cannot do: " + "; ".join(problems)
        )
    try:
        return MergeConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise MergeConfigError(f"invalid merge config: {_format_validation(exc)}") from exc


def _read_text(source: str | Path) -> str:
    if isinstance(source, str) and "\n" in source:
        return source
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        if isinstance(source, str) and ":" in source:
            return source  # one line of YAML, not a path
        raise MergeConfigError(f"merge config file {str(path)!r} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise MergeConfigError(f"merge config file {str(path)!r} cannot be read: {exc}") from exc
