"""Inputs that must not merge: each gives a clear error, and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _merge_helpers import load_state

from accord.errors import MergeError
from accord.merge import merge


def linear_of(*folders: Path) -> dict:
    return {"merge_method": "linear", "models": [{"model": str(f)} for f in folders]}


def assert_nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_merge_shape_mismatch_names_the_tensor_and_writes_nothing(family, odd_models, tmp_path):
    with pytest.raises(MergeError) as info:
        merge(linear_of(family["a"], odd_models["wider"]), tmp_path / "out")
    message = str(info.value)
    assert "tensor shapes differ" in message
    assert "mlp.down_proj.weight is [32, 128]" in message
    assert "[32, 96]" in message
    assert_nothing_written(tmp_path)


def test_merge_vocabulary_mismatch_fails_by_default(family, odd_models, tmp_path):
    with pytest.raises(MergeError) as info:
        merge(linear_of(family["a"], odd_models["grown"]), tmp_path / "out")
    message = str(info.value)
    assert "vocabulary sizes differ" in message
    assert "261" in message and "264" in message
    assert "vocab_policy: base" in message
    assert_nothing_written(tmp_path)


def test_merge_vocabulary_policy_base_keeps_the_base_rows(family, odd_models, states, tmp_path):
    config = {
        "merge_method": "task_arithmetic",
        "base_model": str(family["base"]),
        "models": [{"model": str(odd_models["grown"])}],
        "vocab_policy": "base",
    }
    merge(config, tmp_path / "out")
    out = load_state(tmp_path / "out")
    grown = load_state(odd_models["grown"])
    name = "model.embed_tokens.weight"
    assert out[name].shape[0] == 261
    torch.testing.assert_close(out[name], grown[name][:261])
    written = json.loads((tmp_path / "out" / "config.json").read_text())
    assert written["vocab_size"] == 261


def test_merge_vocabulary_policy_base_pads_a_smaller_model_with_base_rows(
    family, odd_models, tmp_path
):
    config = {
        "merge_method": "linear",
        "models": [{"model": str(odd_models["grown"])}, {"model": str(family["a"])}],
        "vocab_policy": "base",
    }
    merge(config, tmp_path / "out")
    out, grown, a = (
        load_state(tmp_path / "out"),
        load_state(odd_models["grown"]),
        load_state(family["a"]),
    )
    name = "lm_head.weight"
    assert out[name].shape[0] == 264
    torch.testing.assert_close(out[name][:261], (grown[name][:261] + a[name]) / 2)
    torch.testing.assert_close(out[name][261:], grown[name][261:])


def test_merge_architecture_mismatch_names_both_architectures(family, odd_models, tmp_path):
    with pytest.raises(MergeError) as info:
        merge(linear_of(family["a"], odd_models["gpt2"]), tmp_path / "out")
    assert "LlamaForCausalLM (llama)" in str(info.value)
    assert "GPT2LMHeadModel (gpt2)" in str(info.value)
    assert_nothing_written(tmp_path)


def test_merge_missing_tensor_names_the_model_and_tensor(family, odd_models, tmp_path):
    with pytest.raises(MergeError) as info:
        merge(linear_of(family["a"], odd_models["tied"]), tmp_path / "out")
    assert f"{odd_models['tied']} lacks lm_head.weight" in str(info.value)
    assert_nothing_written(tmp_path)


def test_merge_missing_model_folder_is_a_merge_error(family, tmp_path):
    with pytest.raises(MergeError, match="is not a local folder"):
        merge(linear_of(family["a"], tmp_path / "nowhere"), tmp_path / "out")
    assert_nothing_written(tmp_path)


def test_merge_corrupt_header_is_reported_before_any_work(family, copy_model, tmp_path):
    broken = copy_model(family["b"], "broken")
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(MergeError, match="is not a safetensors file"):
        merge(linear_of(family["a"], broken), tmp_path / "out")
    assert_nothing_written(tmp_path)


def test_merge_truncated_file_is_reported_before_any_work(family, copy_model, tmp_path):
    broken = copy_model(family["b"], "broken")
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(MergeError, match="is truncated or damaged"):
        merge(linear_of(family["a"], broken), tmp_path / "out")
    assert_nothing_written(tmp_path)


def test_merge_missing_shard_is_reported_before_any_work(family, copy_model, tmp_path):
    broken = copy_model(family["b_sharded"], "broken")
    sorted(broken.glob("model-*.safetensors"))[-1].unlink()
    with pytest.raises(MergeError, match="which is missing from"):
        merge(linear_of(family["a_sharded"], broken), tmp_path / "out")
    assert_nothing_written(tmp_path)


def test_merge_unreadable_weights_are_a_merge_error(family, copy_model, tmp_path, monkeypatch):
    broken = copy_model(family["b"], "broken")
    real_open = Path.open

    def deny(self: Path, *args, **kwargs):
        if self == broken / "model.safetensors":
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", deny)
    with pytest.raises(MergeError, match="Permission denied"):
        merge(linear_of(family["a"], broken), tmp_path / "out")
    assert_nothing_written(tmp_path)


def test_merge_pytorch_bin_checkpoint_is_refused(family, copy_model, tmp_path):
    broken = copy_model(family["b"], "broken")
    (broken / "model.safetensors").rename(broken / "pytorch_model.bin")
    with pytest.raises(MergeError, match="no safetensors weights"):
        merge(linear_of(family["a"], broken), tmp_path / "out")


def test_merge_without_enough_disk_fails_before_writing(family, tmp_path, monkeypatch):
    from accord.merge import _checks

    monkeypatch.setattr(_checks, "free_bytes", lambda path: 1000)
    with pytest.raises(MergeError, match="not enough free disk"):
        merge(linear_of(family["a"], family["b"]), tmp_path / "out")
    assert_nothing_written(tmp_path)


def test_merge_nan_in_result_publishes_nothing(family, copy_model, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = copy_model(family["b"], "broken")
    state = load_file(broken / "model.safetensors")
    state["model.norm.weight"][3] = float("nan")
    save_file(state, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(MergeError, match="'model.norm.weight' holds NaN or infinite values"):
        merge(linear_of(family["a"], broken), tmp_path / "out")
    assert_nothing_written(tmp_path)


def test_merge_float16_overflow_is_caught(family, tmp_path):
    config = {
        "merge_method": "linear",
        "models": [
            {"model": str(family["a"]), "parameters": {"weight": 1e6}},
            {"model": str(family["b"])},
        ],
        "parameters": {"normalize": False},
        "out_dtype": "float16",
    }
    with pytest.raises(MergeError, match="NaN or infinite"):
        merge(config, tmp_path / "out")
    assert_nothing_written(tmp_path)


def test_merge_broken_tokenizer_copy_publishes_nothing(family, copy_model, tmp_path, monkeypatch):
    from accord.merge import _engine

    real_copy = _engine.shutil.copyfile

    def corrupting_copy(src, dst, *args, **kwargs):
        result = real_copy(src, dst, *args, **kwargs)
        if Path(dst).name == "tokenizer.json":
            data = json.loads(Path(dst).read_text())
            vocab = data["model"]["vocab"]
            vocab["a"], vocab["b"] = vocab["b"], vocab["a"]
            Path(dst).write_text(json.dumps(data))
        return result

    monkeypatch.setattr(_engine.shutil, "copyfile", corrupting_copy)
    with pytest.raises(MergeError, match="does not round-trip"):
        merge(linear_of(family["a"], family["b"]), tmp_path / "out")
    assert_nothing_written(tmp_path)


def test_merge_linear_takes_vocabulary_and_config_from_the_listed_base(
    family, odd_models, tmp_path
):
    config = {
        "merge_method": "linear",
        "base_model": str(odd_models["grown"]),
        "models": [{"model": str(family["a"])}, {"model": str(odd_models["grown"])}],
        "vocab_policy": "base",
    }
    merge(config, tmp_path / "out")
    out, grown, a = (
        load_state(tmp_path / "out"),
        load_state(odd_models["grown"]),
        load_state(family["a"]),
    )
    assert out["model.embed_tokens.weight"].shape[0] == 264
    torch.testing.assert_close(out["lm_head.weight"][261:], grown["lm_head.weight"][261:])
    torch.testing.assert_close(
        out["lm_head.weight"][:261], (a["lm_head.weight"] + grown["lm_head.weight"][:261]) / 2
    )
    assert json.loads((tmp_path / "out" / "config.json").read_text())["vocab_size"] == 264


def test_merge_into_an_input_folder_is_refused(family, copy_model, tmp_path):
    from accord.errors import MergeConfigError

    b = copy_model(family["b"], "b")
    with pytest.raises(MergeConfigError, match="is one of the input models"):
        merge(linear_of(family["a"], b), b, overwrite=True)
    assert (b / "model.safetensors").is_file()


@pytest.mark.parametrize("how", ["parent", "dotdot", "symlink", "inside"])
def test_merge_output_that_is_contains_or_is_inside_an_input_is_refused(
    family, copy_model, tmp_path, how
):
    from accord.errors import MergeConfigError

    a = copy_model(family["a"], "zoo/a")
    b = copy_model(family["b"], "zoo/b")
    (tmp_path / "sub").mkdir()
    if how == "parent":
        out = tmp_path / "zoo"
    elif how == "dotdot":
        out = tmp_path / "sub" / ".." / "zoo" / "b"
    elif how == "symlink":
        out = tmp_path / "link"
        out.symlink_to(b, target_is_directory=True)
    else:
        out = b / "merged"
    with pytest.raises(MergeConfigError, match="input model"):
        merge(linear_of(a, b), out, overwrite=True)
    assert (a / "model.safetensors").is_file() and (b / "model.safetensors").is_file()
    assert not (b / "merged").exists()


def test_merge_output_symlink_is_replaced_as_its_target(family, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "old.txt").write_text("old")
    link = tmp_path / "out"
    link.symlink_to(target, target_is_directory=True)
    merge(linear_of(family["a"], family["b"]), link, overwrite=True)
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert (target / "model.safetensors").is_file() and not (target / "old.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    "shard", ["../../etc/passwd", "../a/model.safetensors", "/etc/passwd", "..\\a\\x.safetensors"]
)
def test_merge_shard_path_outside_the_model_folder_is_refused(
    family, copy_model, tmp_path, shard
):
    b = copy_model(family["b_sharded"], "b")
    copy_model(family["a"], "a")
    index_path = b / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = shard
    index_path.write_text(json.dumps(index))
    with pytest.raises(MergeError, match="outside the model folder"):
        merge(linear_of(family["a_sharded"], b), tmp_path / "out")
    assert_nothing_written(tmp_path)
