"""Ensembles on models that learn: three tiny GPT-2s trained on three-digit addition.

Run:  python benchmarks/ensembles.py               (trains on first run, ~10-15 min on one core)
      python benchmarks/ensembles.py --problems 100 (a quicker, noisier run)

The benchmark builds everything itself: it trains three GPT-2 models (4 layers, width 128,
~0.8 M parameters, seeds 1, 2, 3, 600 steps each) and one smaller model for the cascade's first
stage (2 layers, width 64, ~0.1 M parameters, seed 4, 1,000 steps) on ``aaa+bbb=cccc`` (see
``_ensembles_train.py``; they are cached under ``~/.cache/accord-bench/ensembles/``), then scores
on 500 held-out problems (exact match of the four-digit sum):

- each model greedy (``HFBackend``, concurrent requests batched);
- ``self_consistency(agent, k)`` for k = 5 and 10 per model (temperature 0.7, one call asking
  for k samples, seed ``10_000 * k + 1000 * problem`` per problem), with per-sample accuracy and
  pass@k;
- ``vote`` across the three models' greedy answers (a three-way split keeps model 1's answer);
- ``TokenEnsemble`` of the three (equal weights, greedy) and the same gated at 0.9; and the
  one-model ``TokenEnsemble`` of model 1 as a check that the loop reproduces greedy decoding;
- a two-stage ``Cascade``: the small model, escalating to the best member (by validation
  accuracy) when the small model's mean token probability is below a threshold chosen on 300
  validation problems (the lowest of 0.5, 0.8, 0.9, 0.95, 0.97, 0.99, 0.995 whose validation accuracy
  reaches the best member's, else the most accurate); and the same cascade escalating to the
  ``TokenEnsemble``. Cost is counted in parameter-tokens (tokens read or written times the
  parameters of the model reading them), a proxy for compute.

Figures go to stdout (a markdown table) and ``~/.cache/accord-bench/ensembles/results.json``.
One torch thread; timings vary with machine load.
"""

from __future__ import annotations

import os

for _name, _value in {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "ACCORD_DURABILITY": "off",  # thousands of small graph runs: do not record them
}.items():
    os.environ.setdefault(_name, _value)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ensembles_eval import (  # noqa: E402
    Measured,
    cascade,
    greedy,
    sampled_vote,
    token_ensemble,
    vote_across,
)
from _ensembles_train import CACHE, Recipe, held_out, train_or_load  # noqa: E402

from accord.backends.hf import HFBackend  # noqa: E402
from accord.ensemble import TokenEnsemble  # noqa: E402

MEMBERS = (Recipe(seed=1, steps=600), Recipe(seed=2, steps=600), Recipe(seed=3, steps=600))
SMALL = Recipe(seed=4, steps=1000, hidden=64, layers=2)
GATE = 0.9
THRESHOLDS = (0.5, 0.8, 0.9, 0.95, 0.97, 0.99, 0.995)


def _row(m: Measured, problems: list[tuple[int, int]], note: str = "") -> dict[str, Any]:
    return {
        "method": m.name,
        "accuracy": m.accuracy(problems),
        "seconds": m.seconds,
        "calls": m.calls,
        "note": note,
        **m.extra,
    }


async def evaluate(n_problems: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    started = time.perf_counter()
    members = [train_or_load(r) for r in MEMBERS]
    small = train_or_load(SMALL)
    models_ready = time.perf_counter() - started
    backends = [HFBackend(str(t.folder), max_batch_size=64) for t in members]
    cheap = HFBackend(str(small.folder), max_batch_size=64)
    for b in (*backends, cheap):
        await b.load()
    test, validation = held_out()
    test = test[:n_problems]
    rows: list[dict[str, Any]] = []

    each = [
        await greedy(f"model {t.recipe.seed} greedy", b, test)
        for t, b in zip(members, backends, strict=True)
    ]
    rows += [_row(m, test) for m in each]
    mean_member = sum(m.accuracy(test) for m in each) / len(each)

    for t, b in zip(members, backends, strict=True):
        for k in (5, 10):
            m = await sampled_vote(
                f"model {t.recipe.seed} self_consistency k={k}", b, test, k, 10_000 * k
            )
            rows.append(_row(m, test))

    rows.append(_row(vote_across("vote across the 3 models (greedy answers)", each), test))

    solo = await token_ensemble(
        "TokenEnsemble of model 1 alone", TokenEnsemble([backends[0]]), test
    )
    same = sum(x == y for x, y in zip(solo.answers, each[0].answers, strict=True))
    rows.append(_row(solo, test, f"{same}/{len(test)} answers identical to model 1 greedy"))
    full = await token_ensemble("TokenEnsemble of the 3 models", TokenEnsemble(backends), test)
    rows.append(_row(full, test))
    gated = await token_ensemble(
        f"TokenEnsemble of the 3, gated at {GATE}", TokenEnsemble(backends, gate=GATE), test
    )
    rows.append(_row(gated, test))

    # Cascades: the best member and the threshold are chosen on validation problems.
    val_each = [
        await greedy(f"model {t.recipe.seed}", b, validation)
        for t, b in zip(members, backends, strict=True)
    ]
    val_acc = [m.accuracy(validation) for m in val_each]
    best = max(range(len(members)), key=lambda i: (val_acc[i], -i))
    p_small, p_member = float(small.params), float(members[best].params)
    price_small, price_best = (p_small, p_small), (p_member, p_member)
    # The ensemble's prompt tokens are already summed over its 3 models; each step runs all 3.
    price_ensemble = (p_member, 3 * p_member)
    small_val = await greedy("small", cheap, validation)
    sweep: list[dict[str, Any]] = []
    for threshold in THRESHOLDS:
        m = await cascade(
            "c", cheap, backends[best], (price_small, price_best), threshold, validation
        )
        sweep.append(
            {"threshold": threshold, "validation_accuracy": m.accuracy(validation), **m.extra}
        )
    matching = [e for e in sweep if e["validation_accuracy"] >= val_acc[best]]
    chosen = (
        matching[0]["threshold"]
        if matching
        else max(sweep, key=lambda e: (e["validation_accuracy"], -e["threshold"]))["threshold"]
    )
    small_test = await greedy(f"small model (seed {SMALL.seed}) greedy", cheap, test)
    to_best = await cascade(
        f"Cascade small -> model {members[best].recipe.seed} (threshold {chosen})",
        cheap,
        backends[best],
        (price_small, price_best),
        chosen,
        test,
    )
    to_ensemble = await cascade(
        f"Cascade small -> TokenEnsemble of the 3 (threshold {chosen})",
        cheap,
        TokenEnsemble(backends),
        (price_small, price_ensemble),
        chosen,
        test,
    )
    ensemble_cost = (
        full.extra["prompt_tokens"] * price_ensemble[0] + full.extra["steps"] * price_ensemble[1]
    ) / 1e6
    cascade_rows = [
        {**_row(small_test, test), "cost": small_test.extra["tokens"] * p_small / 1e6},
        {
            **_row(each[best], test, "the best member on validation, asked directly"),
            "cost": each[best].extra["tokens"] * p_member / 1e6,
        },
        _row(to_best, test),
        {**_row(full, test), "cost": ensemble_cost},
        _row(to_ensemble, test),
    ]
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}, 1 thread",
        "problems": len(test),
        "members": [
            {
                "seed": t.recipe.seed,
                "steps": t.recipe.steps,
                "params": t.params,
                "train_seconds": t.train_seconds,
                "final_loss": t.final_loss,
                "validation_accuracy": acc,
            }
            for t, acc in zip(members, val_acc, strict=True)
        ],
        "small": {
            "seed": small.recipe.seed,
            "steps": small.recipe.steps,
            "params": small.params,
            "train_seconds": small.train_seconds,
            "validation_accuracy": small_val.accuracy(validation),
        },
        "mean_member_accuracy": mean_member,
        "rows": rows,
        "cascade": {
            "best": members[best].recipe.seed,
            "best_validation_accuracy": val_acc[best],
            "threshold": chosen,
            "sweep": sweep,
            "rows": cascade_rows,
        },
        "models_seconds": models_ready,
        "total_seconds": time.perf_counter() - started,
    }


def _report(results: dict[str, Any]) -> str:
    lines = [f"{results['machine']}; {results['problems']} held-out problems", ""]
    lines.append("| model | seed | steps | parameters | training | validation accuracy |")
    lines.append("|---|---|---|---|---|---|")
    for m in results["members"]:
        lines.append(
            f"| member | {m['seed']} | {m['steps']} | {m['params']:,} | {m['train_seconds']:.0f} s | {m['validation_accuracy'] * 100:.1f}% |"
        )
    s = results["small"]
    lines.append(
        f"| small (cascade stage 1) | {s['seed']} | {s['steps']} | {s['params']:,} | {s['train_seconds']:.0f} s | {s['validation_accuracy'] * 100:.1f}% |"
    )
    lines += ["", "| method | accuracy | time | notes |", "|---|---|---|---|"]
    for r in results["rows"]:
        notes = [r["note"]] if r["note"] else []
        if "pass_at_k" in r:
            notes.append(
                f"per sample {r['per_sample'] * 100:.1f}%, pass@k {r['pass_at_k'] * 100:.1f}%"
            )
        if "combined" in r:
            notes.append(
                f"combined at {r['combined'] * 100:.0f}% of steps, forwards {r['forwards']}"
            )
        if "ties" in r:
            notes.append(f"{r['ties']} three-way splits")
        lines.append(
            f"| {r['method']} | {r['accuracy'] * 100:.1f}% | {r['seconds']:.1f} s | {'; '.join(notes)} |"
        )
    lines.append(f"\nmean of the three members: {results['mean_member_accuracy'] * 100:.1f}%")
    c = results["cascade"]
    lines += [
        "",
        "| cascade method (test) | accuracy | cost (M parameter-tokens) | escalated | time |",
        "|---|---|---|---|---|",
    ]
    for r in c["rows"]:
        cost = "" if r.get("cost") is None else f"{r['cost']:.1f}"
        escalated = "" if "escalated" not in r else f"{r['escalated'] * 100:.0f}%"
        lines.append(
            f"| {r['method']} | {r['accuracy'] * 100:.1f}% | {cost} | {escalated} "
            f"| {r['seconds']:.1f} s |"
        )
    always_best, to_best, ensemble, to_ensemble = c["rows"][1:]
    for label, cheap_row, dear_row in (
        (f"model {c['best']}", to_best, always_best),
        ("the TokenEnsemble", to_ensemble, ensemble),
    ):
        lines.append(
            f"\ncascade to {label}: {cheap_row['cost'] / dear_row['cost'] * 100:.0f}% of the cost of "
            f"always asking {label} ({cheap_row['cost']:.1f} vs {dear_row['cost']:.1f} M "
            f"parameter-tokens), accuracy {cheap_row['accuracy'] * 100:.1f}% vs "
            f"{dear_row['accuracy'] * 100:.1f}%"
        )
    lines += [
        "",
        "| threshold (validation sweep) | validation accuracy | escalated |",
        "|---|---|---|",
    ]
    for e in c["sweep"]:
        lines.append(
            f"| {e['threshold']} | {e['validation_accuracy'] * 100:.1f}% | {e['escalated'] * 100:.0f}% |"
        )
    lines.append(
        f"\ntotal {results['total_seconds']:.0f} s: training or loading the models "
        f"{results['models_seconds']:.0f} s, evaluation "
        f"{results['total_seconds'] - results['models_seconds']:.0f} s"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=500, help="held-out problems (max 500)")
    args = parser.parse_args()
    results = asyncio.run(evaluate(min(args.problems, 500)))
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(_report(results))


if __name__ == "__main__":
    main()
