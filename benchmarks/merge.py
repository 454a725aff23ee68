"""accord's merge engine side by side with mergekit: wall time, peak RSS, and output agreement.

Run:  python benchmarks/merge.py                 (~500 M-parameter model; see benchmarks/README.md)
      python benchmarks/merge.py --size small    (a quick smoke run)
      python benchmarks/merge.py --quality       (also: merges of tiny models trained on addition)

Inputs: a random Llama-style base (~0.50 B parameters) and two forks (base + noise), saved in
bf16 as ~300 MB shards with an index, written under ``--workdir`` (default
``~/.cache/accord-bench/merge``, never the repository). Each method (linear, task_arithmetic,
ties, slerp) runs from the same YAML file through ``python -m accord.merge.cli merge`` and
``mergekit-yaml``, each as a separate process with one torch thread and a warm page cache; wall
time comes from the parent, peak RSS from ``wait4`` (what ``/usr/bin/time -v`` reports). The two
outputs are then compared tensor by tensor. Each YAML runs twice: ``dtype: bfloat16`` (bf16 out)
and ``dtype: float32`` (float32 out; mergekit then computes in float32 too).

mergekit comes from the ``bench`` extra; where it lives in another environment, point
``--mergekit`` (or ``MERGEKIT_YAML``) at its ``mergekit-yaml``. Without it, accord's own figures
are still reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _merge_models import SHAPES, write_family  # noqa: E402

METHODS = ("linear", "task_arithmetic", "ties", "slerp")
ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def config_yaml(method: str, models: dict[str, Path], layers: int, dtype: str) -> str:
    base, f1, f2 = models["base"], models["fork1"], models["fork2"]
    if method == "linear":
        body = f"""merge_method: linear
models:
  - model: {f1}
    parameters: {{weight: 0.6}}
  - model: {f2}
    parameters: {{weight: 0.4}}
"""
    elif method == "task_arithmetic":
        body = f"""merge_method: task_arithmetic
base_model: {base}
models:
  - model: {f1}
    parameters: {{weight: 0.7}}
  - model: {f2}
    parameters: {{weight: 0.5}}
parameters: {{lambda: 0.9}}
"""
    elif method == "ties":
        body = f"""merge_method: ties
base_model: {base}
models:
  - model: {f1}
    parameters: {{density: 0.5, weight: 1.0}}
  - model: {f2}
    parameters: {{density: 0.3, weight: 0.5}}
parameters: {{normalize: true}}
"""
    else:
        body = f"""merge_method: slerp
base_model: {f1}
slices:
  - sources:
      - model: {f1}
        layer_range: [0, {layers}]
      - model: {f2}
        layer_range: [0, {layers}]
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5
"""
    return body + f"dtype: {dtype}\n"


def warm(folders: list[Path]) -> None:
    """Read every input file once so each run starts with a warm page cache."""
    for folder in folders:
        for path in folder.glob("*.safetensors"):
            with path.open("rb") as f:
                while f.read(1 << 24):
                    pass


def timed(cmd: list[str], log: Path) -> dict[str, float]:
    """Run ``cmd`` under ``/usr/bin/time -v``: its wall time (s) and peak RSS (MB).

    (``wait4`` from this process would not do: Linux carries a process's peak RSS across
    ``exec``, so a child forked from a large parent reports the parent's peak.)
    """
    env = {**os.environ, **ENV}
    stats = log.with_suffix(".time")
    with log.open("wb") as out:
        proc = subprocess.run(
            ["/usr/bin/time", "-v", "-o", str(stats), *cmd],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}); see {log}")
    fields = dict(
        line.strip().rsplit(": ", 1) for line in stats.read_text().splitlines() if ": " in line
    )
    wall = 0.0
    for part in fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":"):
        wall = wall * 60 + float(part)
    return {"wall_s": wall, "rss_mb": int(fields["Maximum resident set size (kbytes)"]) / 1024}


def load_all(folder: Path) -> dict[str, Any]:
    """Lazy handles to every tensor of a model folder."""
    from safetensors import safe_open

    handles: dict[str, Any] = {}
    for path in sorted(folder.glob("*.safetensors")):
        f = safe_open(str(path), framework="pt")
        for name in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            handles[name] = f
    return handles


def compare(ours: Path, theirs: Path) -> dict[str, float]:
    """Largest differences between two merged folders, over all tensors."""
    a, b = load_all(ours), load_all(theirs)
    if set(a) != set(b):
        raise RuntimeError(f"tensor names differ: {sorted(set(a) ^ set(b))[:5]}")
    worst = {"max_abs": 0.0, "max_rel_maxabs": 0.0, "max_rel_l2": 0.0}
    differing = total = 0
    for name in sorted(a):
        x = a[name].get_tensor(name).float()
        y = b[name].get_tensor(name).float()
        diff = (x - y).abs()
        worst["max_abs"] = max(worst["max_abs"], float(diff.max()))
        worst["max_rel_maxabs"] = max(
            worst["max_rel_maxabs"], float(diff.max() / y.abs().max().clamp(min=1e-12))
        )
        worst["max_rel_l2"] = max(
            worst["max_rel_l2"], float(diff.norm() / y.norm().clamp(min=1e-12))
        )
        differing += int((diff > 0).sum())
        total += diff.numel()
    worst["frac_differing"] = differing / total
    return worst


def find_mergekit(option: str | None) -> str | None:
    for candidate in (
        option,
        os.environ.get("MERGEKIT_YAML"),
        shutil.which("mergekit-yaml"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def run_methods(
    args: argparse.Namespace, models: dict[str, Path], mergekit: str | None
) -> list[dict[str, Any]]:
    """Each method in each dtype, float32 first: its accord output is the exact reference."""
    layers = SHAPES[args.size]["layers"]
    work = Path(args.workdir)
    dtypes = sorted(args.dtypes.split(","), key=lambda d: d != "float32")
    results: list[dict[str, Any]] = []
    reference = work / "out-reference"
    for method in args.methods.split(","):
        shutil.rmtree(reference, ignore_errors=True)
        for dtype in dtypes:
            cfg = work / f"{method}-{dtype}.yaml"
            cfg.write_text(config_yaml(method, models, layers, dtype))
            row: dict[str, Any] = {"method": method, "dtype": dtype}
            outs = {"accord": work / "out-accord", "mergekit": work / "out-mergekit"}
            commands = {
                "accord": [
                    sys.executable,
                    "-m",
                    "accord.merge.cli",
                    "merge",
                    str(cfg),
                    str(outs["accord"]),
                    "--quiet",
                ],
                "mergekit": [mergekit, str(cfg), str(outs["mergekit"]), "--quiet"]
                if mergekit
                else None,
            }
            runs: dict[str, list[dict[str, float]]] = {t: [] for t, c in commands.items() if c}
            for _ in range(args.repeats):  # interleaved, so both see the same machine load
                for tool in runs:
                    shutil.rmtree(outs[tool], ignore_errors=True)
                    warm(list(models.values()))
                    runs[tool].append(
                        timed(commands[tool] or [], work / f"{tool}-{method}-{dtype}.log")
                    )
            for tool, measured in runs.items():
                walls = sorted(r["wall_s"] for r in measured)
                row[f"{tool}_wall_s"] = round(walls[len(walls) // 2], 2)
                row[f"{tool}_rss_mb"] = round(max(r["rss_mb"] for r in measured))
                row[f"{tool}_walls"] = [round(r["wall_s"], 2) for r in measured]
            if mergekit:
                row.update(
                    {
                        k: float(f"{v:.3g}")
                        for k, v in compare(outs["accord"], outs["mergekit"]).items()
                    }
                )
            if dtype == "float32":
                outs["accord"].rename(reference)
            elif reference.exists():
                # Distance of each tool's output from the float32 result (bf16 rounding is ~1e-3).
                for tool, out in outs.items():
                    if out.exists():
                        row[f"{tool}_vs_f32_l2"] = float(
                            f"{compare(out, reference)['max_rel_l2']:.3g}"
                        )
            for out in outs.values():
                shutil.rmtree(out, ignore_errors=True)
            print(json.dumps(row), flush=True)
            results.append(row)
    shutil.rmtree(reference, ignore_errors=True)
    return results


def table(rows: list[dict[str, Any]]) -> str:
    """The results as a markdown table."""
    columns = [
        ("method", "method"),
        ("dtype", "dtype"),
        ("accord_wall_s", "accord wall (s)"),
        ("mergekit_wall_s", "mergekit wall (s)"),
        ("accord_rss_mb", "accord peak RSS (MB)"),
        ("mergekit_rss_mb", "mergekit peak RSS (MB)"),
        ("max_abs", "max abs diff"),
        ("max_rel_maxabs", "max diff / max abs"),
        ("max_rel_l2", "max L2 rel diff"),
        ("frac_differing", "elements differing"),
        ("accord_vs_f32_l2", "accord vs f32 (L2 rel)"),
        ("mergekit_vs_f32_l2", "mergekit vs f32 (L2 rel)"),
    ]
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key, "-")
            cells.append(
                f"{value * 100:.3g}%" if key == "frac_differing" and value != "-" else str(value)
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SHAPES), default="500m")
    parser.add_argument("--workdir", default=str(Path.home() / ".cache" / "accord-bench" / "merge"))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs per tool and method (median wall)"
    )
    parser.add_argument("--mergekit", help="path of mergekit-yaml (default: PATH, $MERGEKIT_YAML)")
    parser.add_argument("--no-speed", action="store_true", help="skip the side-by-side runs")
    parser.add_argument(
        "--quality", action="store_true", help="also run the trained-model quality study"
    )
    args = parser.parse_args()
    os.environ.update(ENV)
    torch.set_num_threads(1)
    started = time.perf_counter()
    if not args.no_speed:
        work = Path(args.workdir) / args.size
        args.workdir = str(work)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        models = write_family(work / "models", args.size)
        params = sum(int(torch.Size(s).numel()) for s in _shapes(models["base"]))
        print(
            f"inputs: {params / 1e9:.3f} B parameters per model, ready in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        mergekit = find_mergekit(args.mergekit)
        if mergekit is None:
            print(
                "mergekit-yaml not found (pip install 'accord[bench]'): accord's figures only",
                flush=True,
            )
        rows = run_methods(args, models, mergekit)
        print(table(rows))
        name = f"results-{args.methods.replace(',', '+')}-r{args.repeats}.json"
        (work / name).write_text(json.dumps(rows, indent=2))
    if args.quality:
        from _merge_quality import run_quality

        print(
            run_quality(
                Path(args.workdir).parent / "quality"
                if not args.no_speed
                else Path(args.workdir) / "quality"
            )
        )
    print(f"total time {time.perf_counter() - started:.0f} s")


def _shapes(folder: Path) -> list[list[int]]:
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shapes: list[list[int]] = []
    for file_name in sorted(set(index["weight_map"].values())):
        with (folder / file_name).open("rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        shapes += [v["shape"] for k, v in header.items() if k != "__metadata__"]
    return shapes


if __name__ == "__main__":
    main()
