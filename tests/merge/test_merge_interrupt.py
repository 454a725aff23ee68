"""An interrupted merge never leaves an output folder that looks complete."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from accord.errors import MergeError
from accord.merge import MergeProgress, merge


def config_of(family: dict[str, Path]) -> dict:
    return {
        "merge_method": "linear",
        "models": [{"model": str(family["a"])}, {"model": str(family["b"])}],
        "max_shard_size": "30KB",
    }


def test_merge_interrupted_by_ctrl_c_leaves_nothing(family, tmp_path):
    def interrupt(progress: MergeProgress) -> None:
        if progress.tensors_done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        merge(config_of(family), tmp_path / "out", progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_merge_failure_with_overwrite_keeps_the_old_folder(family, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous model")

    def fail(progress: MergeProgress) -> None:
        if progress.tensors_done == 3:
            raise MergeError("disk went away")

    with pytest.raises(MergeError):
        merge(config_of(family), out, overwrite=True, progress=fail)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


KILLED_MERGE = textwrap.dedent(
    """
    import os, signal, sys
    from accord.merge import merge

    def die(progress):
        if progress.tensors_done == 5:
            os.kill(os.getpid(), signal.SIGKILL)

    config = {{"merge_method": "linear", "max_shard_size": "30KB",
              "models": [{{"model": {a!r}}}, {{"model": {b!r}}}]}}
    merge(config, {out!r}, progress=die)
    """
)


def test_merge_killed_process_leaves_only_a_hidden_partial_folder(family, tmp_path):
    out = tmp_path / "out"
    script = KILLED_MERGE.format(a=str(family["a"]), b=str(family["b"]), out=str(out))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert not out.exists()
    (partial,) = tmp_path.iterdir()
    assert partial.name.startswith(".out.accord-partial-")
    names = {p.name for p in partial.iterdir()}
    assert names and names.isdisjoint({"config.json", "model.safetensors.index.json"})
    # The next merge into the same folder clears the dead process's leftovers and succeeds.
    merge(config_of(family), out)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (out / "config.json").is_file()
