"""The tensor-level merge methods against references written from each method's formula."""

from __future__ import annotations

import math

import pytest
import torch

from accord.merge import (
    dare,
    drop_and_rescale,
    linear,
    model_stock,
    slerp,
    task_arithmetic,
    ties,
    trim_by_magnitude,
)


def rand(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


BASE = rand(0, 16, 12)
A = BASE + 0.1 * rand(1, 16, 12)
B = BASE + 0.2 * rand(2, 16, 12)
C = BASE + 0.15 * rand(3, 16, 12)


def test_linear_is_the_normalised_weighted_sum():
    expected = (0.2 * A + 0.5 * B + 0.3 * C) / 1.0
    torch.testing.assert_close(linear([A, B, C], [0.2, 0.5, 0.3]), expected)
    expected = (1.0 * A + 3.0 * B) / 4.0
    torch.testing.assert_close(linear([A, B], [1.0, 3.0]), expected)


def test_linear_without_normalize_keeps_the_raw_sum():
    torch.testing.assert_close(linear([A, B], [1.0, 3.0], normalize=False), A + 3.0 * B)


def test_linear_consumes_a_generator_one_tensor_at_a_time():
    seen = []

    def tensors():
        for t in (A, B, C):
            seen.append(len(seen))
            yield t

    torch.testing.assert_close(linear(tensors(), [1.0, 1.0, 1.0]), (A + B + C) / 3)
    assert seen == [0, 1, 2]


def reference_slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    u, v = a.flatten() / a.norm(), b.flatten() / b.norm()
    omega = math.acos(float((u * v).sum()))
    return (math.sin((1 - t) * omega) * a + math.sin(t * omega) * b) / math.sin(omega)


@pytest.mark.parametrize("t", [0.0, 0.3, 0.5, 1.0])
def test_slerp_follows_the_great_circle_formula(t):
    a, b = rand(4, 8, 8), rand(5, 8, 8)
    torch.testing.assert_close(slerp(a, b, t), reference_slerp(a, b, t))


def test_slerp_endpoints_return_the_inputs():
    torch.testing.assert_close(slerp(A, B, 0.0), A)
    torch.testing.assert_close(slerp(A, B, 1.0), B)


def test_slerp_falls_back_to_lerp_for_near_parallel_tensors():
    b = A * 2.0 + 1e-6 * rand(6, 16, 12)  # cos ~ 1: sin(omega) ~ 0 would blow up
    out = slerp(A, b, 0.25)
    torch.testing.assert_close(out, 0.75 * A + 0.25 * b)
    assert torch.isfinite(out).all()


def test_slerp_of_a_zero_tensor_is_finite():
    zero = torch.zeros(4, 4)
    torch.testing.assert_close(slerp(zero, zero, 0.5), zero)
    assert torch.isfinite(slerp(zero, rand(7, 4, 4), 0.5)).all()


def test_task_arithmetic_adds_weighted_task_vectors():
    expected = BASE + 0.7 * (0.5 * (A - BASE) + 1.5 * (B - BASE))
    torch.testing.assert_close(task_arithmetic(BASE, [A, B], [0.5, 1.5], lam=0.7), expected)


def test_task_arithmetic_negative_weight_subtracts_the_task_vector():
    torch.testing.assert_close(task_arithmetic(BASE, [A], [-1.0]), BASE - (A - BASE))


def reference_ties(base, tensors, weights, densities, lam=1.0, normalize=True):
    trimmed = []
    for t, d in zip(tensors, densities, strict=True):
        tau = (t - base).flatten()
        k = max(1, int(d * tau.numel()))
        threshold = tau.abs().sort(descending=True).values[k - 1]
        trimmed.append(torch.where(tau.abs() >= threshold, tau, 0.0) * 1.0)
    weighted = [w * t for w, t in zip(weights, trimmed, strict=True)]
    sign = torch.where(sum(weighted) >= 0, 1.0, -1.0)
    num = torch.zeros_like(sign)
    den = torch.zeros_like(sign)
    for w, t in zip(weights, weighted, strict=True):
        agree = (torch.sign(t) == sign).float()
        num += t * agree
        den += w * agree
    merged = num / torch.where(den == 0, 1.0, den) if normalize else num
    return base + lam * merged.reshape(base.shape)


@pytest.mark.parametrize("densities", [(1.0, 1.0, 1.0), (0.2, 0.5, 0.3)])
def test_ties_matches_trim_elect_disjoint_mean(densities):
    out = ties(BASE, [A, B, C], [1.0, 0.6, 1.2], list(densities), lam=0.9)
    torch.testing.assert_close(
        out, reference_ties(BASE, [A, B, C], [1.0, 0.6, 1.2], densities, 0.9)
    )


def test_ties_entries_with_the_losing_sign_are_left_out():
    base = torch.zeros(3)
    a = torch.tensor([1.0, -2.0, 0.5])
    b = torch.tensor([3.0, 1.0, -0.1])
    # entry 0: both positive, mean 2; entry 1: mass -1 -> only a (-2); entry 2: +0.4 -> only a.
    torch.testing.assert_close(
        ties(base, [a, b], [1.0, 1.0], [1.0, 1.0]), torch.tensor([2.0, -2.0, 0.5])
    )


def test_trim_by_magnitude_keeps_the_largest_fraction():
    delta = torch.tensor([0.1, -5.0, 0.3, 2.0, -0.2, 0.0, 1.0, -0.05])
    torch.testing.assert_close(
        trim_by_magnitude(delta, 0.25), torch.tensor([0.0, -5.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0])
    )
    assert int((trim_by_magnitude(rand(8, 100, 10), 0.3) != 0).sum()) == 300
    assert int((trim_by_magnitude(delta, 0.01) != 0).sum()) == 1


def gens(seed: int, n: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed * 100 + i) for i in range(n)]


def test_dare_same_seed_same_result_other_seed_other_result():
    first = dare(BASE, [A, B], [1.0, 1.0], [0.5, 0.5], gens(1, 2))
    again = dare(BASE, [A, B], [1.0, 1.0], [0.5, 0.5], gens(1, 2))
    other = dare(BASE, [A, B], [1.0, 1.0], [0.5, 0.5], gens(2, 2))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_drop_and_rescale_keeps_the_expected_fraction_and_the_norm():
    delta = rand(9, 400, 250)
    out = drop_and_rescale(delta, 0.3, torch.Generator().manual_seed(0))
    kept = out != 0
    assert abs(float(kept.float().mean()) - 0.3) < 0.01
    torch.testing.assert_close(out[kept], delta[kept] / 0.3)
    # E|x| of the survivors, rescaled, matches the original L1 mass within a few percent.
    assert abs(float(out.abs().sum() / delta.abs().sum()) - 1.0) < 0.03


def test_dare_linear_is_task_arithmetic_of_dropped_vectors():
    g = gens(3, 2)
    out = dare(BASE, [A, B], [0.4, 0.6], [0.5, 0.8], g, lam=1.0)
    masks = [torch.rand(BASE.shape, generator=x) for x in gens(3, 2)]
    tau_a = (A - BASE) * (masks[0] < 0.5) / 0.5
    tau_b = (B - BASE) * (masks[1] < 0.8) / 0.8
    torch.testing.assert_close(out, BASE + 0.4 * tau_a + 0.6 * tau_b)


def test_dare_ties_elects_signs_over_dropped_vectors():
    out = dare(BASE, [A, B], [1.0, 1.0], [0.5, 0.5], gens(4, 2), combine="ties", normalize=True)
    masks = [torch.rand(BASE.shape, generator=x) for x in gens(4, 2)]
    dropped = [BASE + (t - BASE) * (m < 0.5) / 0.5 for t, m in zip((A, B), masks, strict=True)]
    torch.testing.assert_close(out, reference_ties(BASE, dropped, [1.0, 1.0], (1.0, 1.0)))


def reference_model_stock(base, tensors):
    taus = [(t - base).flatten() for t in tensors]
    cos = [
        float(taus[i] @ taus[j] / (taus[i].norm() * taus[j].norm()))
        for i in range(len(taus))
        for j in range(i + 1, len(taus))
    ]
    c = sum(cos) / len(cos)
    k = len(tensors)
    t = min(1.0, max(0.0, k * c / (1 + (k - 1) * c)))
    return t * sum(tensors) / k + (1 - t) * base


def test_model_stock_interpolates_by_the_cosine_ratio():
    shared = 0.1 * rand(10, 16, 12)  # a common direction makes the cosines clearly positive
    tensors = [BASE + shared + 0.05 * rand(11 + i, 16, 12) for i in range(3)]
    torch.testing.assert_close(model_stock(BASE, tensors), reference_model_stock(BASE, tensors))


def test_model_stock_filter_wise_uses_one_ratio_per_row():
    tensors = [BASE + 0.1 * rand(20 + i, 16, 12) for i in range(2)]
    out = model_stock(BASE, tensors, filter_wise=True)
    for row in range(16):
        expected = reference_model_stock(BASE[row], [t[row] for t in tensors])
        torch.testing.assert_close(out[row], expected)


def test_methods_leave_their_inputs_untouched_unless_inplace():
    inputs = [BASE.clone(), A.clone(), B.clone()]
    ties(inputs[0], inputs[1:], [1.0, 1.0], [0.5, 0.5])
    task_arithmetic(inputs[0], inputs[1:], [1.0, 1.0])
    linear(inputs, [1.0, 1.0, 1.0])
    slerp(inputs[1], inputs[2], 0.5)
    dare(inputs[0], inputs[1:], [1.0, 1.0], [0.5, 0.5], gens(5, 2), combine="ties")
    assert all(torch.equal(x, y) for x, y in zip(inputs, [BASE, A, B], strict=True))


@pytest.mark.parametrize("method", ["linear", "task_arithmetic", "ties", "slerp", "dare"])
def test_methods_inplace_gives_the_same_result(method):
    def run(inplace: bool) -> torch.Tensor:
        base, a, b = BASE.clone(), A.clone(), B.clone()
        if method == "linear":
            return linear([a, b], [0.3, 0.7], inplace=inplace)
        if method == "task_arithmetic":
            return task_arithmetic(base, [a, b], [0.3, 0.7], lam=0.8, inplace=inplace)
        if method == "ties":
            return ties(base, [a, b], [1.0, 0.5], [0.4, 0.6], inplace=inplace)
        if method == "slerp":
            return slerp(a, b, 0.3, inplace=inplace)
        return dare(base, [a, b], [1.0, 1.0], [0.5, 0.5], gens(6, 2), inplace=inplace)

    assert torch.equal(run(False), run(True))
