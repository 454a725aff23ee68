"""Merge configs: mergekit's YAML accepted, anything unsupported named in a clear error."""

from __future__ import annotations

import textwrap

import pytest

from accord.errors import MergeConfigError
from accord.merge import MergeConfig, load_config, plan
from accord.merge._config import parse_size
from accord.merge._params import METHODS, evaluate, resolve

MERGEKIT_TIES = textwrap.dedent(
    """\
    models:
      - model: ./base
      - model: ./math
        parameters:
          density: [1, 0.7, 0.1]
          weight: 1.0
      - model: ./code
        parameters:
          density: 0.5
          weight: [0, 0.3, 0.7, 1]
    merge_method: ties
    base_model: ./base
    parameters:
      normalize: true
      int8_mask: true
    dtype: float16
    """
)


def test_load_config_reads_a_mergekit_ties_yaml(tmp_path):
    path = tmp_path / "ties.yaml"
    path.write_text(MERGEKIT_TIES)
    config = load_config(path)
    assert config.merge_method == "ties"
    assert config.base_model == "./base"
    assert [m.model for m in config.models or []] == ["./base", "./math", "./code"]
    assert config.out_dtype_code == "F16"


def test_load_config_reads_a_mergekit_slerp_yaml_with_slices():
    config = load_config(
        textwrap.dedent(
            """\
            slices:
              - sources:
                  - model: A
                    layer_range: [0, 32]
                  - model: B
                    layer_range: [0, 32]
            merge_method: slerp
            base_model: A
            parameters:
              t:
                - filter: self_attn
                  value: [0, 0.5, 0.3, 0.7, 1]
                - filter: mlp
                  value: [1, 0.5, 0.7, 0.3, 0]
                - value: 0.5
            dtype: bfloat16
            """
        )
    )
    assert config.slices is not None and config.slices[0].sources[1].layer_range == (0, 32)


@pytest.mark.parametrize(
    ("yaml_text", "named"),
    [
        (
            "merge_method: della\nmodels: [{model: a}]",
            "'della' is a mergekit method accord does not implement",
        ),
        ("merge_method: linear\nmodules: {}\n", "'modules'"),
        (
            "merge_method: linear\nmodels: [{model: a}]\ntokenizer_source: union",
            "'union' is not supported",
        ),
        (
            "merge_method: linear\nmodels: [{model: a}]\ntokenizer: {source: base, tokens: {}}",
            "tokenizer.tokens",
        ),
        ("merge_method: linear\nmodels: [{model: a}]\nchat_template: chatml", "chat_template"),
        ("merge_method: linear\nmodels: [{model: a+lora}]", "LoRA"),
        ("merge_method: linear\nmodels: [{model: a}]\nfoo: 1", "foo: unknown key"),
        ("merge_method: linear\nmodels: [{model: a, weight: 1}]", "models.0.weight: unknown key"),
        ("merge_method: linear", "exactly one of 'models' or 'slices'"),
        ("merge_method: linear\nmodels: [{model: a}]\ndtype: int4", "unknown dtype 'int4'"),
        (
            "merge_method: linear\nslices: [{sources: [{model: a, layer_range: [0, 2]}], residual_weight: 0.1}]",
            "slices[0].residual_weight",
        ),
        ("merge_method: [unclosed", "not valid YAML"),
    ],
)
def test_load_config_names_what_is_unsupported(yaml_text, named):
    with pytest.raises(MergeConfigError) as info:
        load_config(yaml_text)
    assert named in str(info.value)


def test_load_config_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(MergeConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (
            {"merge_method": "ties", "models": [{"model": "a", "parameters": {"gamma": 0.1}}]},
            "'gamma' is not used by merge_method 'ties'",
        ),
        (
            {
                "merge_method": "linear",
                "models": [{"model": "a", "parameters": {"normalize": False}}],
            },
            "applies to the whole merge",
        ),
        (
            {"merge_method": "ties", "models": [{"model": "a", "parameters": {"density": 1.5}}]},
            "must lie in [0, 1]",
        ),
        (
            {
                "merge_method": "dare_ties",
                "models": [{"model": "a", "parameters": {"density": 0.0}}],
                "seed": 1,
            },
            "must lie in (0, 1]",
        ),
        (
            {"merge_method": "slerp", "models": [{"model": "a"}], "parameters": {"t": "half"}},
            "takes a number",
        ),
        (
            {
                "merge_method": "linear",
                "models": [{"model": "a"}],
                "parameters": {"normalize": 1.0},
            },
            "takes true or false",
        ),
        (
            {"merge_method": "dare_linear", "base_model": "b", "models": [{"model": "a"}]},
            "needs a seed",
        ),
        (
            {"merge_method": "frankenstein", "models": [{"model": "a"}]},
            "unknown merge_method 'frankenstein'",
        ),
    ],
)
def test_plan_rejects_bad_parameters_before_touching_models(config, named):
    with pytest.raises(MergeConfigError) as info:
        plan(config)
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"merge_method": "ties", "models": [{"model": "a"}]}, "ties needs base_model"),
        (
            {
                "merge_method": "slerp",
                "base_model": "a",
                "models": [{"model": "a"}, {"model": "b"}, {"model": "c"}],
            },
            "exactly 1 model(s) besides the base, got 2",
        ),
        (
            {"merge_method": "model_stock", "base_model": "a", "models": [{"model": "b"}]},
            "at least 2 model(s)",
        ),
        ({"merge_method": "linear", "models": [{"model": "a"}]}, "at least 2 models"),
        (
            {
                "merge_method": "linear",
                "base_model": "z",
                "models": [{"model": "a"}, {"model": "b"}],
            },
            "not among them",
        ),
        (
            {
                "merge_method": "ties",
                "base_model": "a",
                "models": [{"model": "a", "parameters": {"weight": 1}}, {"model": "b"}],
            },
            "parameters are set on the base model",
        ),
        ({"merge_method": "linear", "models": [{"model": "a"}, {"model": "./a"}]}, "listed twice"),
    ],
)
def test_plan_rejects_wrong_model_lists(config, named):
    with pytest.raises(MergeConfigError) as info:
        plan(config)
    assert named in str(info.value)


def test_plan_rejects_slices_that_restack_layers(family):
    a, b = str(family["a"]), str(family["b"])
    config = {
        "merge_method": "linear",
        "slices": [
            {"sources": [{"model": a, "layer_range": [0, 2]}, {"model": b, "layer_range": [1, 3]}]},
        ],
    }
    with pytest.raises(MergeConfigError, match="restacking or reordering layers"):
        plan(config)


def test_plan_rejects_slices_that_miss_layers(family):
    a, b = str(family["a"]), str(family["b"])
    config = {
        "merge_method": "linear",
        "slices": [
            {"sources": [{"model": a, "layer_range": [0, 2]}, {"model": b, "layer_range": [0, 2]}]}
        ],
    }
    with pytest.raises(MergeConfigError, match="cover every layer"):
        plan(config)


def test_evaluate_interpolates_gradients_and_picks_first_matching_filter():
    weight = METHODS["ties"].param("weight")
    assert weight is not None
    assert evaluate(weight, [0.0, 1.0, 0.0], "x", 0.25) == pytest.approx(0.5)
    assert evaluate(weight, [0.0, 1.0, 0.0], "x", 1.0) == pytest.approx(0.0)
    config = load_config(
        {
            "merge_method": "ties",
            "models": [{"model": "a"}],
            "parameters": {"weight": [{"filter": "mlp", "value": 2}, {"value": [0, 1]}]},
        }
    )
    setting = (config.parameters or {})["weight"]
    assert evaluate(weight, setting, "layers.1.mlp.up", 0.5) == 2.0
    assert evaluate(weight, setting, "layers.1.attn.q", 0.5) == pytest.approx(0.5)


def test_resolve_prefers_the_model_scope_then_falls_through_unmatched_filters():
    density = METHODS["ties"].param("density")
    assert density is not None
    model_scope = (
        load_config(
            {
                "merge_method": "ties",
                "models": [
                    {"model": "a", "parameters": {"density": [{"filter": "mlp", "value": 0.2}]}}
                ],
            }
        )
        .models[0]
        .parameters
    )  # type: ignore[index]
    global_scope = {"density": 0.7}
    assert resolve(density, (model_scope, global_scope), "layers.0.mlp.up", 0.0, "ties") == 0.2
    assert resolve(density, (model_scope, global_scope), "layers.0.attn.q", 0.0, "ties") == 0.7
    assert resolve(density, (None, None), "layers.0.attn.q", 0.0, "ties") == 1.0


def test_resolve_required_parameter_missing_is_a_config_error():
    t = METHODS["slerp"].param("t")
    assert t is not None
    with pytest.raises(MergeConfigError, match="slerp needs parameter 't'"):
        resolve(t, (None,), "model.norm.weight", 0.0, "slerp")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (1234, 1234),
        ("2GB", 2 * 10**9),
        ("500MB", 5 * 10**8),
        ("1GiB", 2**30),
        ("1.5 KiB", 1536),
        ("700", 700),
    ],
)
def test_parse_size_reads_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["5B", "lots", "-1GB", True])
def test_parse_size_rejects_ambiguous_or_bad_sizes(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_config_to_yaml_round_trips():
    config = load_config(MERGEKIT_TIES)
    again = load_config(config.to_yaml())
    assert again == config
    assert isinstance(again, MergeConfig)
