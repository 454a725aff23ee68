"""End-to-end merges of tiny saved models against in-memory references from the formulas."""

from __future__ import annotations

import math
import re

import pytest
import torch
from _merge_helpers import LAYERS, load_state

from accord.merge import MergeProgress, merge, plan

LAYER = re.compile(r"\.layers\.(\d+)\.")


def pos(name: str) -> float:
    """Where a gradient is evaluated for a tensor: layer / (layers - 1); 0 outside layers."""
    match = LAYER.search(name)
    return int(match.group(1)) / (LAYERS - 1) if match else 0.0


def assert_states_close(out: dict, expected: dict, *, rtol: float = 1e-6, atol: float = 1e-6):
    assert set(out) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(out[name], tensor, rtol=rtol, atol=atol, msg=name)


def ties_ref(base, taus, weights, densities):
    trimmed = []
    for tau, d in zip(taus, densities, strict=True):
        flat = tau.flatten()
        k = max(1, int(d * flat.numel()))
        threshold = flat.abs().sort(descending=True).values[k - 1]
        trimmed.append(torch.where(flat.abs() >= threshold, flat, 0.0))
    weighted = [w * t for w, t in zip(weights, trimmed, strict=True)]
    sign = torch.where(sum(weighted) >= 0, 1.0, -1.0)
    num = sum(t * (torch.sign(t) == sign) for t in weighted)
    den = sum(w * (torch.sign(t) == sign).float() for w, t in zip(weights, weighted, strict=True))
    return base + (num / torch.where(den == 0, 1.0, den)).reshape(base.shape)


@pytest.mark.parametrize("sharded", [False, True], ids=["unsharded", "sharded"])
def test_merge_linear_matches_the_weighted_average(family, states, tmp_path, sharded):
    suffix = "_sharded" if sharded else ""
    config = {
        "merge_method": "linear",
        "models": [
            {"model": str(family["a" + suffix]), "parameters": {"weight": 1.0}},
            {"model": str(family["b" + suffix]), "parameters": {"weight": 3.0}},
        ],
    }
    merge(config, tmp_path / "out")
    a, b = states["a" + suffix], states["b" + suffix]
    expected = {n: (1.0 * a[n] + 3.0 * b[n]) / 4.0 for n in a}
    assert_states_close(load_state(tmp_path / "out"), expected)


def test_merge_task_arithmetic_with_negative_weight_removes_a_task(family, states, tmp_path):
    config = {
        "merge_method": "task_arithmetic",
        "base_model": str(family["base"]),
        "models": [
            {"model": str(family["a"]), "parameters": {"weight": 1.0}},
            {"model": str(family["b"]), "parameters": {"weight": -0.5}},
        ],
        "parameters": {"lambda": 0.8},
    }
    merge(config, tmp_path / "out")
    s, a, b = states["base"], states["a"], states["b"]
    expected = {n: s[n] + 0.8 * ((a[n] - s[n]) - 0.5 * (b[n] - s[n])) for n in s}
    assert_states_close(load_state(tmp_path / "out"), expected)


def test_merge_ties_matches_reference_with_per_model_density(family, states, tmp_path):
    config = {
        "merge_method": "ties",
        "base_model": str(family["base_sharded"]),
        "models": [
            {"model": str(family["a_sharded"]), "parameters": {"density": 0.3, "weight": 1.0}},
            {"model": str(family["b_sharded"]), "parameters": {"density": 0.6, "weight": 0.5}},
            {"model": str(family["c_sharded"]), "parameters": {"density": 0.5, "weight": 1.0}},
        ],
    }
    merge(config, tmp_path / "out")
    s = states["base_sharded"]
    models = [states["a_sharded"], states["b_sharded"], states["c_sharded"]]
    expected = {
        n: ties_ref(s[n], [m[n] - s[n] for m in models], [1.0, 0.5, 1.0], [0.3, 0.6, 0.5])
        for n in s
    }
    assert_states_close(load_state(tmp_path / "out"), expected)


def slerp_ref(a, b, t):
    u, v = a.flatten() / a.norm(), b.flatten() / b.norm()
    dot = float(u @ v)
    if abs(dot) > 0.9995:
        return (1 - t) * a + t * b
    omega = math.acos(dot)
    return (math.sin((1 - t) * omega) * a + math.sin(t * omega) * b) / math.sin(omega)


def test_merge_slerp_uses_filters_and_layer_gradients(family, states, tmp_path):
    config = {
        "merge_method": "slerp",
        "base_model": str(family["a"]),
        "models": [{"model": str(family["a"])}, {"model": str(family["b"])}],
        "parameters": {
            "t": [
                {"filter": "self_attn", "value": [0.0, 1.0]},
                {"filter": "mlp", "value": [1.0, 0.0]},
                {"value": 0.5},
            ]
        },
    }
    merge(config, tmp_path / "out")
    a, b = states["a"], states["b"]

    def t_for(name: str) -> float:
        if "self_attn" in name:
            return pos(name)
        if "mlp" in name:
            return 1.0 - pos(name)
        return 0.5

    expected = {n: slerp_ref(a[n], b[n], t_for(n)) for n in a}
    out = load_state(tmp_path / "out")
    assert_states_close(out, expected, rtol=1e-5, atol=1e-6)
    # Layer 0 attention is the base's, the last layer's is the other model's.
    torch.testing.assert_close(
        out["model.layers.0.self_attn.q_proj.weight"], a["model.layers.0.self_attn.q_proj.weight"]
    )
    last = f"model.layers.{LAYERS - 1}.self_attn.q_proj.weight"
    torch.testing.assert_close(out[last], b[last], rtol=1e-5, atol=1e-6)


def test_merge_weight_gradient_interpolates_over_layer_depth(family, states, tmp_path):
    config = {
        "merge_method": "task_arithmetic",
        "base_model": str(family["base"]),
        "models": [{"model": str(family["a"]), "parameters": {"weight": [0.0, 0.4, 1.0]}}],
    }
    merge(config, tmp_path / "out")
    s, a = states["base"], states["a"]
    # 3 layers -> positions 0, 0.5, 1 -> weights 0, 0.4, 1; outside the layers: 0 (first value).
    weight = {0: 0.0, 1: 0.4, 2: 1.0}
    expected = {}
    for n in s:
        match = LAYER.search(n)
        w = weight[int(match.group(1))] if match else 0.0
        expected[n] = s[n] + w * (a[n] - s[n])
    assert_states_close(load_state(tmp_path / "out"), expected)


def test_merge_slices_give_each_layer_range_its_parameters(family, states, tmp_path):
    a, b = str(family["a"]), str(family["b"])
    config = {
        "merge_method": "linear",
        "slices": [
            {
                "sources": [
                    {"model": a, "layer_range": [0, 1]},
                    {"model": b, "layer_range": [0, 1]},
                ],
                "parameters": {"weight": 1.0},
            },
            {
                "sources": [
                    {"model": a, "layer_range": [1, 3], "parameters": {"weight": 3.0}},
                    {"model": b, "layer_range": [1, 3]},
                ],
                "parameters": {"weight": 1.0},
            },
        ],
    }
    merge(config, tmp_path / "out")
    sa, sb = states["a"], states["b"]
    expected = {}
    for n in sa:
        match = LAYER.search(n)
        first_slice = (match and int(match.group(1)) == 0) or "embed" in n
        wa = 1.0 if first_slice else 3.0
        expected[n] = (wa * sa[n] + sb[n]) / (wa + 1.0)
    assert_states_close(load_state(tmp_path / "out"), expected)


def test_merge_dare_is_reproducible_with_a_seed_and_differs_across_seeds(family, tmp_path):
    def run(seed: int, out: str) -> dict:
        config = {
            "merge_method": "dare_ties",
            "base_model": str(family["base"]),
            "models": [
                {"model": str(family["a"]), "parameters": {"density": 0.5, "weight": 1.0}},
                {"model": str(family["b"]), "parameters": {"density": 0.5, "weight": 1.0}},
            ],
            "seed": seed,
        }
        merge(config, tmp_path / out)
        return load_state(tmp_path / out)

    first, again, other = run(7, "first"), run(7, "again"), run(8, "other")
    name = "model.layers.1.mlp.up_proj.weight"
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert not torch.equal(first[name], other[name])


def test_merge_dare_linear_keeps_about_density_of_each_task_vector(family, states, tmp_path):
    config = {
        "merge_method": "dare_linear",
        "base_model": str(family["base"]),
        "models": [{"model": str(family["a"]), "parameters": {"density": 0.3}}],
        "seed": 0,
    }
    merge(config, tmp_path / "out")
    out, s, a = load_state(tmp_path / "out"), states["base"], states["a"]
    name = "model.embed_tokens.weight"
    tau, merged = a[name] - s[name], out[name] - s[name]
    kept = merged != 0
    assert abs(float(kept.float().mean()) - 0.3) < 0.03
    torch.testing.assert_close(merged[kept], tau[kept] / 0.3)


def test_merge_model_stock_matches_the_cosine_ratio(family, states, tmp_path):
    config = {
        "merge_method": "model_stock",
        "base_model": str(family["base"]),
        "models": [{"model": str(family[k])} for k in ("a", "b", "c")],
    }
    merge(config, tmp_path / "out")
    s = states["base"]
    models = [states[k] for k in ("a", "b", "c")]
    expected = {}
    for n in s:
        taus = [(m[n] - s[n]).flatten() for m in models]
        cos = [
            float(taus[i] @ taus[j] / (taus[i].norm() * taus[j].norm()))
            for i in range(3)
            for j in range(i + 1, 3)
        ]
        c = sum(cos) / 3
        t = min(1.0, max(0.0, 3 * c / (1 + 2 * c)))
        expected[n] = t * sum(m[n] for m in models) / 3 + (1 - t) * s[n]
    assert_states_close(load_state(tmp_path / "out"), expected, rtol=1e-5, atol=1e-6)


def test_merge_output_loads_with_transformers_and_keeps_the_tokenizer(family, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = {
        "merge_method": "linear",
        "models": [{"model": str(family["a"])}, {"model": str(family["b"])}],
        "dtype": "bfloat16",
        "max_shard_size": "30KB",
    }
    result = merge(config, tmp_path / "out")
    assert len(result.files) > 1
    assert (tmp_path / "out" / "model.safetensors.index.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert model.dtype == torch.bfloat16
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert tokenizer.decode(tokenizer("héllo").input_ids) == "héllo"
    assert (tmp_path / "out" / "generation_config.json").is_file()
    assert "merge_method: linear" in (tmp_path / "out" / "accord_merge.yaml").read_text()


def test_merge_bf16_output_is_the_float32_result_rounded_once(family, states, tmp_path):
    config = {
        "merge_method": "linear",
        "models": [{"model": str(family["a"])}, {"model": str(family["b"])}],
        "out_dtype": "bfloat16",
    }
    merge(config, tmp_path / "out")
    out = load_state(tmp_path / "out")
    a, b = states["a"], states["b"]
    for name in a:
        assert out[name].dtype == torch.bfloat16
        assert torch.equal(out[name], ((a[name] + b[name]) / 2).to(torch.bfloat16))


def test_merge_progress_reports_every_tensor_and_byte(family, tmp_path):
    seen: list[MergeProgress] = []
    config = {
        "merge_method": "linear",
        "models": [{"model": str(family["a"])}, {"model": str(family["b"])}],
    }
    result = merge(config, tmp_path / "out", progress=seen.append)
    assert [p.tensors_done for p in seen] == list(range(1, result.tensors + 1))
    assert seen[-1].bytes_done == seen[-1].bytes_total == result.bytes_written


def test_plan_describes_parameters_without_writing(family, tmp_path):
    config = {
        "merge_method": "ties",
        "base_model": str(family["base"]),
        "models": [
            {"model": str(family["a"]), "parameters": {"weight": [0.0, 1.0], "density": 0.5}}
        ],
    }
    text = plan(config, tmp_path / "out").describe()
    assert "method      ties" in text
    assert "weight      0 .. 1 (varies by tensor)" in text
    assert not (tmp_path / "out").exists()


def test_merge_record_names_the_seed_and_input_digests(family, tmp_path):
    config = {
        "merge_method": "dare_linear",
        "base_model": str(family["base"]),
        "models": [{"model": str(family["a"]), "parameters": {"density": 0.5}}],
        "seed": 42,
    }
    merge(config, tmp_path / "out")
    import yaml

    record = yaml.safe_load((tmp_path / "out" / "accord_merge.yaml").read_text())
    assert record["config"]["seed"] == 42
    assert set(record["inputs_sha256"]) == {str(family["base"]), str(family["a"])}
    assert all(len(v) == 64 for v in record["inputs_sha256"].values())


def test_merge_into_existing_folder_needs_overwrite(family, tmp_path):
    config = {
        "merge_method": "linear",
        "models": [{"model": str(family["a"])}, {"model": str(family["b"])}],
    }
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    from accord.errors import MergeConfigError

    with pytest.raises(MergeConfigError, match="already holds files"):
        merge(config, out)
    assert (out / "old.txt").exists()
    merge(config, out, overwrite=True)
    assert not (out / "old.txt").exists()
    assert (out / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
