"""accord.merge's public names, and that importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import accord.merge


def test_merge_public_names_are_pinned():
    assert sorted(accord.merge.__all__) == sorted(
        [
            "merge",
            "plan",
            "load_config",
            "MergeConfig",
            "MergePlan",
            "MergeProgress",
            "MergeResult",
            "METHOD_NAMES",
            "linear",
            "slerp",
            "task_arithmetic",
            "ties",
            "dare",
            "model_stock",
            "trim_by_magnitude",
            "drop_and_rescale",
        ]
    )
    assert all(hasattr(accord.merge, name) for name in accord.merge.__all__)


def test_merge_method_names_match_mergekit_spelling():
    assert accord.merge.METHOD_NAMES == (
        "linear",
        "slerp",
        "task_arithmetic",
        "ties",
        "dare_linear",
        "dare_ties",
        "model_stock",
    )


def test_merge_import_does_not_import_torch_or_transformers():
    code = "import sys, accord.merge, accord.merge.cli; print(sorted(m for m in ('torch', 'transformers', 'safetensors') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
