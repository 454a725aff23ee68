"""Checks on a written merge, before it is published.

Three checks, each raising :class:`MergeError`: the weight files read back with exactly the
planned tensors; ``vocab_size`` in the written ``config.json`` equals the rows of the input
embedding, and the tokenizer has no id beyond it; the written tokenizer loads and encodes and
decodes sample texts exactly as the source tokenizer does (a round trip that survives the copy).
NaN and infinity are checked earlier, as each tensor is written.

Caveat: the tokenizer check needs ``transformers`` (the ``hf`` extra) and is skipped, with a
debug event, when the source folder has no tokenizer files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from accord._lazy import require
from accord._log import get_logger
from accord.errors import MergeError
from accord.merge._plan import MergePlan
from accord.merge._safetensors import INDEX_NAME, read_header

__all__ = ["verify_output", "SAMPLE_TEXTS"]

log = get_logger(__name__)

_EMBEDDING = re.compile(
    r"(?:^|\.)(?:embed_tokens|wte|word_embeddings|embed_in|tok_embeddings)\.weight$"
)
_TOKENIZER_MARKERS = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")

SAMPLE_TEXTS = (
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "123 + 456 = 579",
    "ünïcödé — 数字 🙂\n\ttabs and  spaces",
)
"""Texts the written tokenizer must treat exactly as the source tokenizer does."""


def verify_output(plan: MergePlan, folder: Path) -> None:
    """Run every post-write check on ``folder`` (the unpublished output).

    Raises:
        MergeError: a check failed; the message names it.
    """
    _check_weights(plan, folder)
    config: dict[str, Any] = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    vocab_size = config.get("vocab_size")
    if vocab_size is None and isinstance(config.get("text_config"), dict):
        vocab_size = config["text_config"].get("vocab_size")
    _check_vocab(plan, vocab_size)
    _check_tokenizer(plan, folder, vocab_size)


def _check_weights(plan: MergePlan, folder: Path) -> None:
    found: dict[str, tuple[str, tuple[int, ...]]] = {}
    for file_name, _ in plan.shards:
        for name, info in read_header(folder / file_name).items():
            found[name] = (info.dtype, info.shape)
    expected = {t.name: (t.out_dtype, t.shape) for t in plan.tasks}
    if found != expected:
        raise MergeError(
            f"the written weights in {folder} do not match the plan; nothing published"
        )
    if len(plan.shards) > 1:
        index = json.loads((folder / INDEX_NAME).read_text(encoding="utf-8"))
        if set(index["weight_map"]) != set(expected):
            raise MergeError(
                f"the written {INDEX_NAME} does not list every tensor; nothing published"
            )


def _check_vocab(plan: MergePlan, vocab_size: Any) -> None:
    embedding = next((t for t in plan.tasks if _EMBEDDING.search(t.name)), None)
    if embedding is None or not isinstance(vocab_size, int):
        log.debug("vocab_check_skipped", embedding=embedding is not None, vocab_size=vocab_size)
        return
    if embedding.shape[0] != vocab_size:
        raise MergeError(
            f"the written config says vocab_size {vocab_size}, but {embedding.name} has "
            f"{embedding.shape[0]} rows; the model would not load. Take the config from the model "
            "whose vocabulary is kept (the base)"
        )


def _check_tokenizer(plan: MergePlan, folder: Path, vocab_size: Any) -> None:
    source = plan.tokenizer_from
    if not any((source / name).is_file() for name in _TOKENIZER_MARKERS):
        log.debug("tokenizer_check_skipped", source=str(source))
        return
    transformers = require("transformers", extra="hf")
    try:
        original = transformers.AutoTokenizer.from_pretrained(str(source))
        written = transformers.AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:  # transformers raises many kinds here
        raise MergeError(f"the tokenizer copied from {source} does not load: {exc}") from exc
    for text in SAMPLE_TEXTS:
        ids = original(text).input_ids
        if written(text).input_ids != ids or written.decode(ids) != original.decode(ids):
            raise MergeError(
                f"the written tokenizer does not round-trip like the one in {source} "
                f"(text {text!r}); the tokenizer files were not copied intact"
            )
    if getattr(original, "chat_template", None) != getattr(written, "chat_template", None):
        raise MergeError(f"the written tokenizer lost the chat template of {source}")
    if isinstance(vocab_size, int) and len(written) > vocab_size:
        raise MergeError(
            f"the tokenizer has {len(written)} tokens but the merged model's vocab_size is "
            f"{vocab_size}: ids past the embedding would crash it. Use the tokenizer of the model "
            "whose vocabulary is kept (tokenizer_source: base)"
        )
