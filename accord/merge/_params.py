"""Merge methods' parameters: what each method takes, and how a setting resolves per tensor.

A setting (see :mod:`accord.merge._config`) is a scalar, a gradient (a list interpolated over
layer depth), or a list of ``{filter, value}`` entries where the first entry whose filter is a
substring of the tensor name wins. Settings are looked up from the most specific scope to the
least: a model's own parameters (in a slice source or a ``models`` entry), the slice's, then the
global ones; a scope whose setting does not match the tensor passes to the next. This is
mergekit's resolution, so configs written for it mean the same here.

Caveat: a gradient is evaluated at ``pos = (layer - first) / (layers - 1)`` inside its slice;
tensors outside the layers (embeddings, final norm, LM head) take ``pos = 0``, its first value,
as in mergekit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from accord.errors import MergeConfigError
from accord.merge._config import Conditional, MergeConfig, Setting

__all__ = ["ParamSpec", "MethodSpec", "METHODS", "Value", "evaluate", "resolve", "check_config"]

Value = float | bool
"""A resolved parameter value."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a merge method."""

    name: str
    kind: type[float] | type[bool]
    default: Value | None
    """None: the parameter is required."""
    per_model: bool
    """True: each model has its own value (weight, density); False: one value per tensor."""
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    """True: ``low`` itself is not allowed."""


@dataclass(frozen=True)
class MethodSpec:
    """What a merge method needs."""

    name: str
    needs_base: bool
    min_models: int
    """Fewest non-base models."""
    max_models: int | None
    params: tuple[ParamSpec, ...]
    random: bool = False

    def param(self, name: str) -> ParamSpec | None:
        """The spec of parameter ``name``, or None."""
        return next((p for p in self.params if p.name == name), None)


_WEIGHT = ParamSpec("weight", float, 1.0, per_model=True)
_LAMBDA = ParamSpec("lambda", float, 1.0, per_model=False)
_INT8 = ParamSpec("int8_mask", bool, False, per_model=False)
_DENSITY = ParamSpec("density", float, 1.0, per_model=True, low=0.0, high=1.0)
_DARE_DENSITY = ParamSpec("density", float, 1.0, per_model=True, low=0.0, high=1.0, low_open=True)
_RESCALE = ParamSpec("rescale", bool, True, per_model=False)

METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("linear", False, 2, None, (_WEIGHT, ParamSpec("normalize", bool, True, False))),
        MethodSpec("slerp", True, 1, 1, (ParamSpec("t", float, None, False, 0.0, 1.0),)),
        MethodSpec(
            "task_arithmetic",
            True,
            1,
            None,
            (_WEIGHT, _LAMBDA, ParamSpec("normalize", bool, False, False)),
        ),
        MethodSpec(
            "ties",
            True,
            1,
            None,
            (_WEIGHT, _DENSITY, _LAMBDA, ParamSpec("normalize", bool, True, False), _INT8),
        ),
        MethodSpec(
            "dare_linear",
            True,
            1,
            None,
            (
                _WEIGHT,
                _DARE_DENSITY,
                _LAMBDA,
                ParamSpec("normalize", bool, False, False),
                _RESCALE,
                _INT8,
            ),
            random=True,
        ),
        MethodSpec(
            "dare_ties",
            True,
            1,
            None,
            (
                _WEIGHT,
                _DARE_DENSITY,
                _LAMBDA,
                ParamSpec("normalize", bool, False, False),
                _RESCALE,
                _INT8,
            ),
            random=True,
        ),
        MethodSpec("model_stock", True, 2, None, (ParamSpec("filter_wise", bool, False, False),)),
    )
}
"""Every method accord implements, by mergekit name."""


def _leaf(spec: ParamSpec, raw: float | int | bool | str, where: str) -> Value:
    """Validate one scalar of a setting against the parameter's type and range."""
    if spec.kind is bool:
        if not isinstance(raw, bool):
            raise MergeConfigError(
                f"{where}: parameter {spec.name!r} takes true or false, got {raw!r}"
            )
        return raw
    if isinstance(raw, bool):
        raise MergeConfigError(f"{where}: parameter {spec.name!r} takes a number, got {raw!r}")
    try:
        value = float(raw)
    except ValueError as exc:
        raise MergeConfigError(
            f"{where}: parameter {spec.name!r} takes a number, got {raw!r}"
        ) from exc
    too_low = value <= spec.low if spec.low_open else value < spec.low
    if too_low or value > spec.high or not math.isfinite(value):
        bracket = "(" if spec.low_open else "["
        raise MergeConfigError(
            f"{where}: parameter {spec.name!r} must lie in {bracket}{spec.low:g}, {spec.high:g}], "
            f"got {value:g}"
        )
    return value


def _validate_setting(spec: ParamSpec, setting: Setting, where: str) -> None:
    entries = setting if isinstance(setting, list) else [setting]
    for entry in entries:
        if isinstance(entry, Conditional):
            values = entry.value if isinstance(entry.value, list) else [entry.value]
            for value in values:
                _leaf(spec, value, where)
        else:
            _leaf(spec, entry, where)


def evaluate(spec: ParamSpec, setting: Setting, tensor: str, pos: float) -> Value | None:
    """Evaluate a setting for one tensor.

    Args:
        spec: the parameter.
        setting: its setting in one scope.
        tensor: the tensor name (filters match substrings of it).
        pos: position in ``[0, 1]`` over the layers of the slice (gradients).

    Returns:
        The value, or None when no filter matches (the next scope decides).
    """
    if isinstance(setting, Conditional):
        setting = [setting]
    if isinstance(setting, list):
        if not setting:
            return None
        if isinstance(setting[0], Conditional):
            for cond in setting:
                assert isinstance(cond, Conditional)
                if cond.filter in (None, "*") or cond.filter in tensor:
                    return evaluate(spec, cond.value, tensor, pos)
            return None
        values = [_leaf(spec, v, tensor) for v in setting if not isinstance(v, Conditional)]
        scaled = pos * (len(values) - 1)
        lo = int(scaled)
        if spec.kind is bool:
            return values[lo]
        hi = min(lo + 1, len(values) - 1)
        frac = scaled - lo
        return (1.0 - frac) * float(values[lo]) + frac * float(values[hi])
    return _leaf(spec, setting, tensor)


def resolve(
    spec: ParamSpec,
    scopes: Sequence[Mapping[str, Setting] | None],
    tensor: str,
    pos: float,
    method: str,
) -> Value:
    """Resolve a parameter for one tensor from scopes ordered most specific first.

    Raises:
        MergeConfigError: a required parameter has no value for this tensor.
    """
    for scope in scopes:
        if scope is not None and spec.name in scope:
            value = evaluate(spec, scope[spec.name], tensor, pos)
            if value is not None:
                return value
    if spec.default is None:
        raise MergeConfigError(
            f"{method} needs parameter {spec.name!r} for tensor {tensor!r}: set it under "
            f"'parameters' (e.g. {spec.name}: 0.5)"
        )
    return spec.default


def _check_scope(
    spec: MethodSpec, params: Mapping[str, Setting] | None, where: str, per_model_scope: bool
) -> None:
    for name, setting in (params or {}).items():
        param = spec.param(name)
        if param is None:
            known = ", ".join(p.name for p in spec.params)
            raise MergeConfigError(
                f"{where}: parameter {name!r} is not used by merge_method {spec.name!r} "
                f"(it takes: {known})"
            )
        if per_model_scope and not param.per_model:
            raise MergeConfigError(
                f"{where}: parameter {name!r} applies to the whole merge, not to one model; move it "
                "to the top-level (or slice) 'parameters'"
            )
        _validate_setting(param, setting, where)


def check_config(config: MergeConfig) -> MethodSpec:
    """Check the parts of a config that depend on its method.

    Returns:
        The method's spec.

    Raises:
        MergeConfigError: unknown method, unknown or misplaced parameters, values out of range,
            a random method without a seed.
    """
    spec = METHODS.get(config.merge_method)
    if spec is None:
        raise MergeConfigError(
            f"unknown merge_method {config.merge_method!r}; accord implements {', '.join(METHODS)}"
        )
    _check_scope(spec, config.parameters, "parameters", per_model_scope=False)
    for i, entry in enumerate(config.models or []):
        _check_scope(spec, entry.parameters, f"models[{i}] ({entry.model})", per_model_scope=True)
    for i, slice_ in enumerate(config.slices or []):
        _check_scope(spec, slice_.parameters, f"slices[{i}].parameters", per_model_scope=False)
        for j, source in enumerate(slice_.sources):
            _check_scope(
                spec, source.parameters, f"slices[{i}].sources[{j}] ({source.model})", True
            )
    if spec.random and config.seed is None:
        raise MergeConfigError(
            f"{spec.name} drops entries at random, so it needs a seed to be reproducible: add "
            "'seed: 0' to the config (or pass --seed)"
        )
    return spec
