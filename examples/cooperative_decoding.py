"""Cooperative decoding: two or three local models produce one generation together.

One agent writes a continuation three ways: with speculative decoding (the small model drafts,
the large one verifies: the text is the large model's own greedy text, usually faster), with
contrastive decoding (the large model's plausible tokens that the small one finds least likely),
and, given a third model, with proxy-tuning (the large model steered by the difference between
a small tuned model and its untuned twin). The models must share one tokenizer; models without a
chat template read the task exactly as written (``template="{{ task }}"``).

    python examples/cooperative_decoding.py "Once upon a time" --target hf:./big --draft hf:./small
    python examples/cooperative_decoding.py "123+456=" --target hf:./base \\
        --draft hf:./small-tuned --anti hf:./small-untuned
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import accord
from accord._terminal import plain


async def run(
    task: str, target: Any, draft: Any, anti: Any = None, *, max_tokens: int = 32
) -> dict[str, accord.RunResult]:
    """Answer ``task`` with each cooperative decoder; returns the run result per decoder."""
    decoders: dict[str, accord.Backend] = {
        "speculative": accord.Speculative(target, draft, k=4, adaptive=True),
        "contrastive": accord.Contrastive(target, draft, alpha=0.1),
    }
    if anti is not None:
        decoders["proxy-tuned"] = accord.ProxyTuned(target, draft, anti)
    writer = accord.Agent("writer", template="{{ task }}", max_tokens=max_tokens)
    return {
        name: await writer.run(task, backend=decoder, durability="off")
        for name, decoder in decoders.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", default="Once upon a time")
    parser.add_argument("--target", required=True, help="the large model, e.g. hf:./big")
    parser.add_argument("--draft", required=True, help="the small model (same tokenizer)")
    parser.add_argument("--anti", default=None, help="the small model untuned (proxy-tuning)")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    results = asyncio.run(
        run(args.task, args.target, args.draft, args.anti, max_tokens=args.max_tokens)
    )
    for name, result in results.items():
        models = ", ".join(f"{m}: {u.completion_tokens}" for m, u in result.usage.by_model)
        print(f"--- {name} (tokens run per model: {models})")
        print(plain(result.text))


if __name__ == "__main__":
    main()
