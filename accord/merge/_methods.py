"""The merge methods, one tensor at a time.

Each function takes float32 tensors of one shape (one per model) and returns the merged tensor
in float32; the engine reads, converts and writes around them. The task-vector methods work on
``tau_i = theta_i - base``:

- :func:`linear`: ``sum_i w_i theta_i / sum_i w_i`` (model soups; ``normalize=False`` skips the
  division).
- :func:`slerp`: spherical interpolation of two tensors, linear when they are nearly parallel.
- :func:`task_arithmetic`: ``base + lambda * sum_i w_i tau_i`` (a negative weight removes a
  behaviour).
- :func:`ties`: trim each ``tau_i`` to its largest-magnitude fraction ``density``, elect a sign
  per entry by the summed weighted mass, average the agreeing entries, scale by ``lambda``.
- :func:`dare`: drop each ``tau_i`` entry with probability ``1 - density``, rescale the
  survivors by ``1 / density``, then combine linearly or with TIES' sign election.
- :func:`model_stock`: interpolate between the models' average and the base by a ratio derived
  from the mean pairwise cosine of the task vectors.

Example::

    merged = ties(base, [a, b], weights=[1.0, 1.0], densities=[0.2, 0.2])

Caveat: arguments named ``tensors`` may be any iterable; :func:`linear` and
:func:`task_arithmetic` consume it one tensor at a time. ``inplace=True`` lets a function
overwrite its input tensors (never ``base``) instead of allocating: the engine, which owns its
buffers, uses it. Importing this module does not import torch; calling a function does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Literal

from accord._lazy import require
from accord.errors import MergeConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "linear",
    "slerp",
    "task_arithmetic",
    "ties",
    "dare",
    "model_stock",
    "trim_by_magnitude",
    "drop_and_rescale",
]

SLERP_DOT_THRESHOLD = 0.9995
"""Above this ``|cos|`` between two tensors, :func:`slerp` interpolates linearly."""


def _require_torch() -> None:
    """Import torch or raise MissingDependencyError naming the ``hf`` extra."""
    require("torch", extra="hf")


def linear(
    tensors: Iterable[torch.Tensor],
    weights: Sequence[float],
    *,
    normalize: bool = True,
    inplace: bool = False,
) -> torch.Tensor:
    """Weighted average of ``tensors``.

    Args:
        tensors: one tensor per model.
        weights: one weight per model.
        normalize: divide by the sum of the weights (skipped when it is ~0).
        inplace: allow overwriting the input tensors (saves memory; the engine uses it).

    Returns:
        ``sum_i w_i x_i`` (divided by ``sum_i w_i`` when ``normalize``).
    """
    total: torch.Tensor | None = None
    count = 0
    for tensor in tensors:
        weight = weights[count]
        count += 1
        if total is None:
            total = tensor.mul_(weight) if inplace else tensor * weight
        else:
            total.add_(tensor, alpha=weight)
        del tensor
    if total is None:
        raise MergeConfigError("linear needs at least one tensor")
    if count != len(weights):
        raise ValueError(f"linear got {count} tensors and {len(weights)} weights")
    divisor = sum(weights)
    if normalize and abs(divisor) > 1e-8:
        total.div_(divisor)
    return total


_CHUNK = 1 << 20


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    """``sum(a * b)`` over all entries, accurate for tensors of any size.

    A single float32 dot over tens of millions of entries loses about 1e-4 of relative
    precision, which SLERP's angle amplifies; summing 1M-entry chunks (each summed pairwise)
    in double precision keeps it near float32's own precision.
    """
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    total = 0.0
    for start in range(0, flat_a.numel(), _CHUNK):
        end = start + _CHUNK
        total += float((flat_a[start:end] * flat_b[start:end]).sum())
    return total


def slerp(
    a: torch.Tensor,
    b: torch.Tensor,
    t: float,
    *,
    dot_threshold: float = SLERP_DOT_THRESHOLD,
    eps: float = 1e-8,
    inplace: bool = False,
) -> torch.Tensor:
    """Spherical linear interpolation between ``a`` (``t = 0``) and ``b`` (``t = 1``).

    The angle is measured between the flattened tensors; the result combines them with the usual
    ``sin((1 - t) O) / sin O`` and ``sin(t O) / sin O`` coefficients. Nearly parallel
    (``|cos| > dot_threshold``) or zero tensors fall back to ``(1 - t) a + t b``. With
    ``inplace`` the result is written over ``a``.
    """
    _require_torch()

    norm_a = math.sqrt(_dot(a, a))
    norm_b = math.sqrt(_dot(b, b))
    if norm_a <= eps or norm_b <= eps:
        dot = 1.0
    else:
        dot = min(1.0, max(-1.0, _dot(a, b) / (norm_a * norm_b)))
    if abs(dot) > dot_threshold:
        coef_a, coef_b = 1.0 - t, t
    else:
        omega = math.acos(dot)
        sin_omega = math.sin(omega)
        coef_a = math.sin((1.0 - t) * omega) / sin_omega
        coef_b = math.sin(t * omega) / sin_omega
    out = a.mul_(coef_a) if inplace else a * coef_a
    return out.add_(b, alpha=coef_b)


def _deltas(
    base: torch.Tensor, tensors: Iterable[torch.Tensor], inplace: bool
) -> Iterator[torch.Tensor]:
    """``x_i - base`` for each input, computed over the input when ``inplace``."""
    for tensor in tensors:
        yield tensor.sub_(base) if inplace else tensor - base
        del tensor


def task_arithmetic(
    base: torch.Tensor,
    tensors: Iterable[torch.Tensor],
    weights: Sequence[float],
    *,
    lam: float = 1.0,
    normalize: bool = False,
    inplace: bool = False,
) -> torch.Tensor:
    """``base + lam * sum_i w_i (x_i - base)``, divided by ``sum_i w_i`` when ``normalize``.

    ``inplace`` allows overwriting the model tensors (never ``base``).
    """
    total = linear(_deltas(base, tensors, inplace), weights, normalize=normalize, inplace=True)
    if lam != 1.0:
        total.mul_(lam)
    return total.add_(base)


def trim_by_magnitude(
    delta: torch.Tensor, density: float, *, inplace: bool = False
) -> torch.Tensor:
    """Keep the ``density`` fraction of entries with the largest magnitude, zero the rest.

    At least one entry is kept when ``density > 0``. Entries of equal magnitude at the cut are
    kept in the order torch's descending sort gives them (as mergekit does, so the two agree).
    """
    _require_torch()
    import torch

    if density >= 1.0:
        return delta
    if density <= 0.0 or delta.numel() == 0:
        return delta.zero_() if inplace else torch.zeros_like(delta)
    keep = max(1, int(density * delta.numel()))
    order = torch.argsort(delta.abs().reshape(-1), descending=True)
    mask = torch.zeros(delta.numel(), dtype=torch.bool)
    mask[order[:keep]] = True
    del order
    mask = mask.reshape(delta.shape)
    return delta.mul_(mask) if inplace else delta * mask


def drop_and_rescale(
    delta: torch.Tensor,
    density: float,
    generator: torch.Generator,
    *,
    rescale: bool = True,
    inplace: bool = False,
) -> torch.Tensor:
    """DARE: keep each entry with probability ``density`` and divide the survivors by it."""
    _require_torch()
    import torch

    if density >= 1.0:
        return delta
    keep = torch.rand(delta.shape, generator=generator) < density
    out = delta.mul_(keep) if inplace else delta * keep
    return out.div_(density) if rescale else out


def _elect_and_mean(
    deltas: Sequence[torch.Tensor], weights: Sequence[float], *, normalize: bool
) -> torch.Tensor:
    """TIES' sign election and disjoint mean over trimmed task vectors (overwritten)."""
    _require_torch()
    import torch

    weighted = [d.mul_(w) for d, w in zip(deltas, weights, strict=True)]
    mass = weighted[0].clone()
    for delta in weighted[1:]:
        mass.add_(delta)
    positive = mass >= 0  # the elected sign: + where the summed mass is >= 0
    del mass
    divisor = torch.zeros_like(weighted[0])
    mixed: torch.Tensor | None = None
    for delta, weight in zip(weighted, weights, strict=True):
        agree = torch.where(positive, delta > 0, delta < 0)  # zeros never agree
        delta.mul_(agree)
        mixed = delta if mixed is None else mixed.add_(delta)
        divisor.add_(agree, alpha=weight)
    assert mixed is not None
    if normalize:
        divisor[divisor == 0] = 1.0
        mixed.div_(divisor)
    return mixed


def ties(
    base: torch.Tensor,
    tensors: Iterable[torch.Tensor],
    weights: Sequence[float],
    densities: Sequence[float],
    *,
    lam: float = 1.0,
    normalize: bool = True,
    inplace: bool = False,
) -> torch.Tensor:
    """TIES-Merging: trim, elect signs, disjoint mean, ``base + lam * merged``.

    Args:
        base: the base model's tensor.
        tensors: one fine-tuned tensor per model.
        weights: per-model weights, applied before the sign election (mergekit's convention).
        densities: per-model fraction of task-vector entries kept.
        lam: scale of the merged task vector.
        normalize: divide by the summed weights of the agreeing entries (the disjoint mean).
        inplace: allow overwriting the model tensors (never ``base``).
    """
    deltas = [
        trim_by_magnitude(delta, density, inplace=True)
        for delta, density in zip(_deltas(base, tensors, inplace), densities, strict=True)
    ]
    mixed = _elect_and_mean(deltas, weights, normalize=normalize)
    if lam != 1.0:
        mixed.mul_(lam)
    return mixed.add_(base)


def dare(
    base: torch.Tensor,
    tensors: Iterable[torch.Tensor],
    weights: Sequence[float],
    densities: Sequence[float],
    generators: Sequence[torch.Generator],
    *,
    combine: Literal["linear", "ties"] = "linear",
    rescale: bool = True,
    lam: float = 1.0,
    normalize: bool = False,
    inplace: bool = False,
) -> torch.Tensor:
    """DARE: drop and rescale each task vector, then combine linearly or by TIES election.

    Args:
        base: the base model's tensor.
        tensors: one fine-tuned tensor per model.
        weights: per-model weights.
        densities: per-model keep probability (``1 - p``).
        generators: one seeded generator per model: the same seeds give the same masks.
        combine: ``linear`` (task arithmetic) or ``ties`` (sign election, disjoint mean).
        rescale: divide the survivors by ``density``.
        lam: scale of the merged task vector.
        normalize: divide by the summed weights.
        inplace: allow overwriting the model tensors (never ``base``).
    """
    deltas = [
        drop_and_rescale(delta, density, generator, rescale=rescale, inplace=True)
        for delta, density, generator in zip(
            _deltas(base, tensors, inplace), densities, generators, strict=True
        )
    ]
    if combine == "ties":
        mixed = _elect_and_mean(deltas, weights, normalize=normalize)
    else:
        mixed = linear(deltas, weights, normalize=normalize, inplace=True)
    if lam != 1.0:
        mixed.mul_(lam)
    return mixed.add_(base)


def model_stock(
    base: torch.Tensor, tensors: Sequence[torch.Tensor], *, filter_wise: bool = False
) -> torch.Tensor:
    """Model Stock: ``t * mean_i(x_i) + (1 - t) * base`` with ``t = k c / (1 + (k - 1) c)``.

    ``c`` is the mean pairwise cosine between the task vectors (per row when ``filter_wise``),
    ``k`` the number of models; ``t`` is clamped to ``[0, 1]`` and is 0 where ``1 + (k - 1) c``
    vanishes.
    """
    _require_torch()
    import torch

    if len(tensors) < 2:
        raise MergeConfigError("model_stock needs at least two models besides the base")
    shape = base.shape
    rows = (
        base.reshape(base.shape[0], -1) if filter_wise and base.dim() > 1 else base.reshape(1, -1)
    )
    offsets = [t.reshape(rows.shape) - rows for t in tensors]
    norms = [torch.linalg.vector_norm(o, dim=1) for o in offsets]
    cosines = []
    for i in range(len(offsets)):
        for j in range(i + 1, len(offsets)):
            dot = (offsets[i] * offsets[j]).sum(dim=1)
            cosines.append((dot / (norms[i] * norms[j]).clamp(min=1e-6)).clamp(-1.0, 1.0))
    cos = torch.stack(cosines).mean(dim=0)
    k = len(tensors)
    denominator = 1.0 + (k - 1) * cos
    singular = denominator.abs() < 1e-6
    ratio = torch.where(singular, 0.0, k * cos / torch.where(singular, 1.0, denominator))
    ratio = ratio.clamp(0.0, 1.0).unsqueeze(1)
    average = linear(tensors, [1.0] * k).reshape(rows.shape)
    return (ratio * average + (1.0 - ratio) * rows).reshape(shape)
