"""The ``accord merge`` command, registered into a fresh typer app."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from accord.merge.cli import register


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """accord (test app)."""

    register(app)
    return app


def write_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "merge.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def linear(family) -> dict:
    return {
        "merge_method": "linear",
        "models": [{"model": str(family["a"])}, {"model": str(family["b"])}],
    }


def test_merge_cli_writes_the_model_and_exits_0(app, family, tmp_path):
    result = CliRunner().invoke(
        app, ["merge", str(write_config(tmp_path, linear(family))), str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "merged 30 tensors with linear" in result.output
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_merge_cli_dry_run_checks_and_writes_nothing(app, family, tmp_path):
    config = write_config(tmp_path, linear(family))
    result = CliRunner().invoke(app, ["merge", str(config), str(tmp_path / "out"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "method      linear" in result.output
    assert "nothing written" in result.output
    assert not (tmp_path / "out").exists()


def test_merge_cli_options_override_the_config(app, family, tmp_path):
    config = write_config(tmp_path, linear(family))
    args = [
        "merge",
        str(config),
        str(tmp_path / "out"),
        "--max-shard-size",
        "30KB",
        "--out-dtype",
        "bfloat16",
        "--quiet",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "model.safetensors.index.json").is_file()
    assert '"dtype": "bfloat16"' in (tmp_path / "out" / "config.json").read_text()


def test_merge_cli_bad_config_exits_2(app, family, tmp_path):
    config = write_config(tmp_path, {**linear(family), "merge_method": "della"})
    result = CliRunner().invoke(app, ["merge", str(config), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "error: merge config asks for what accord cannot do" in result.output


def test_merge_cli_taken_output_folder_exits_2(app, family, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    result = CliRunner().invoke(
        app, ["merge", str(write_config(tmp_path, linear(family))), str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    assert "--overwrite" in result.output


def test_merge_cli_failed_input_check_exits_1(app, family, tmp_path):
    config = write_config(
        tmp_path,
        {
            "merge_method": "linear",
            "models": [{"model": str(family["a"])}, {"model": str(tmp_path / "missing")}],
        },
    )
    result = CliRunner().invoke(app, ["merge", str(config), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "is not a local folder" in result.output


def test_merge_cli_missing_argument_is_a_usage_error(app):
    result = CliRunner().invoke(app, ["merge"])
    assert result.exit_code == 2


def test_merge_cli_dare_seed_from_the_command_line(app, family, tmp_path):
    config = {
        "merge_method": "dare_linear",
        "base_model": str(family["base"]),
        "models": [{"model": str(family["a"]), "parameters": {"density": 0.5}}],
    }
    path = write_config(tmp_path, config)
    without = CliRunner().invoke(app, ["merge", str(path), str(tmp_path / "out")])
    assert without.exit_code == 2 and "needs a seed" in without.output
    with_seed = CliRunner().invoke(app, ["merge", str(path), str(tmp_path / "out"), "--seed", "3"])
    assert with_seed.exit_code == 0, with_seed.output
    assert "seed: 3" in (tmp_path / "out" / "accord_merge.yaml").read_text()


def test_merge_cli_overwrite_of_the_folder_holding_the_inputs_exits_2(app, family, tmp_path):
    import shutil

    zoo = tmp_path / "zoo"
    for name in ("a", "b"):
        shutil.copytree(family[name], zoo / name)
    config = write_config(
        tmp_path,
        {"merge_method": "linear", "models": [{"model": str(zoo / "a")}, {"model": str(zoo / "b")}]},
    )
    result = CliRunner().invoke(app, ["merge", str(config), str(zoo), "--overwrite"])
    assert result.exit_code == 2, result.output
    assert "contains the input model" in result.output
    assert (zoo / "a" / "model.safetensors").is_file() and (zoo / "b" / "model.safetensors").is_file()


@pytest.mark.parametrize("models", [5, "a", {"model": "x"}])
def test_merge_cli_models_that_is_not_a_list_is_a_config_error(app, tmp_path, models):
    config = write_config(tmp_path, {"merge_method": "linear", "models": models})
    result = CliRunner().invoke(app, ["merge", str(config), str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "models" in result.output and "valid list" in result.output
