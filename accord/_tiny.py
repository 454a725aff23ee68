"""Tiny offline tokenizers and models, for tests, examples and benchmarks.

Everything here is built from code: no model hub, no download, no training data beyond what the
caller passes (or the Python standard library's own sources). A typical use::

    from accord._tiny import save_tiny_llama

    folder = save_tiny_llama(tmp_path / "tiny")      # byte tokenizer + 2-layer Llama, seed 0
    backend = accord.backend(f"hf:{folder}")

Tokenizers (each returns a ``transformers`` fast tokenizer with BOS/EOS/PAD and the ChatML markers
``<|im_start|>`` / ``<|im_end|>`` declared as special tokens, left padding, and only
``input_ids``/``attention_mask`` as model inputs):

- :func:`byte_tokenizer`: byte-level BPE with no merges. One token per UTF-8 byte, lossless for any
  text, 261 tokens, ChatML chat template. The default for tiny models.
- :func:`char_tokenizer`: one token per character of a fixed alphabet, BOS prepended; for
  synthetic tasks such as digit arithmetic.
- :func:`bpe_tokenizer`: byte-level BPE trained on local text (by default the standard library's
  sources); fewer tokens per text than the byte tokenizer.

Models (random weights from a fixed seed; a random model writes gibberish, so assert on structure,
never on content): :func:`tiny_llama`, :func:`tiny_gpt2`, and :func:`save_tiny_llama` /
:func:`save_tiny_gpt2`, which save model and tokenizer into one folder that
``from_pretrained(folder)`` (and so ``hf:FOLDER``) loads. :data:`LLAMA_46M` is the shape of the
local-batching benchmark's model.

Caveat: importing this module is cheap (no torch, no transformers); every function imports them
when called and raises :class:`~accord.errors.MissingDependencyError` naming the ``hf`` extra
when they are missing. Timings and exact outputs assume one torch thread (``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from accord._lazy import require

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "CHATML_TEMPLATE",
    "SPECIAL_TOKENS",
    "LLAMA_46M",
    "byte_tokenizer",
    "char_tokenizer",
    "bpe_tokenizer",
    "save_tokenizer",
    "tiny_llama",
    "tiny_gpt2",
    "save_tiny_llama",
    "save_tiny_gpt2",
    "param_count",
]

PAD, BOS, EOS, IM_START, IM_END = "<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"

SPECIAL_TOKENS: Final[tuple[str, ...]] = (PAD, BOS, EOS, IM_START, IM_END)
"""The special tokens of every tokenizer built here, with ids 0-4 in this order."""

CHATML_TEMPLATE: Final[str] = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML: each message as ``<|im_start|>role\\ncontent<|im_end|>\\n``, then an opened assistant
turn when ``add_generation_prompt=True`` (Qwen's format)."""

LLAMA_46M: Final[Mapping[str, int]] = {
    "hidden": 512,
    "layers": 8,
    "heads": 8,
    "intermediate": 3072,
}
"""Shape of the ~46 M-parameter Llama (with :func:`byte_tokenizer`) used by the local-batching
benchmark: ``save_tiny_llama(folder, **LLAMA_46M)``."""


# ------------------------------------------------------------------ tokenizers


def _wrap(tokenizer: Any, *, chat_template: str | None, bos: bool) -> PreTrainedTokenizerBase:
    """Wrap a ``tokenizers.Tokenizer`` as a transformers fast tokenizer with accord's specials."""
    transformers = require("transformers", extra="hf")
    wrapped: PreTrainedTokenizerBase = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[IM_START, IM_END],
        padding_side="left",
        model_input_names=["input_ids", "attention_mask"],
        chat_template=chat_template,
    )
    if not bos:
        wrapped.add_bos_token = False
    return wrapped


def _byte_level_parts() -> tuple[Any, Any]:
    tok = require("tokenizers", extra="hf")
    pre = tok.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    return pre, tok.decoders.ByteLevel()


def _mark_special(tokenizer: Any) -> None:
    tok = require("tokenizers", extra="hf")
    tokenizer.add_special_tokens(
        [tok.AddedToken(s, special=True, normalized=False) for s in SPECIAL_TOKENS]
    )


def byte_tokenizer(*, chat_template: str | None = CHATML_TEMPLATE) -> PreTrainedTokenizerBase:
    """A byte-level tokenizer that needs no training: one token per UTF-8 byte.

    A BPE model with no merges over the 256 symbols of the GPT-2 byte alphabet, after the five
    :data:`SPECIAL_TOKENS` (ids 0-4: pad, bos, eos, ``<|im_start|>``, ``<|im_end|>``); 261 tokens
    in all. It adds no BOS when encoding (the chat template marks turns instead), pads on the left
    and round-trips any text exactly.

    Args:
        chat_template: Jinja chat template; ChatML by default, ``None`` for a tokenizer without
            one (accord then falls back to a plain ``role: content`` prompt).

    Returns:
        A ``transformers`` fast tokenizer.

    Example::

        tok = byte_tokenizer()
        assert tok.decode(tok("héllo ✓").input_ids) == "héllo ✓"
    """
    tok = require("tokenizers", extra="hf")
    vocab: dict[str, int] = {s: i for i, s in enumerate(SPECIAL_TOKENS)}
    for symbol in sorted(tok.pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    tokenizer = tok.Tokenizer(tok.models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer, tokenizer.decoder = _byte_level_parts()
    _mark_special(tokenizer)
    return _wrap(tokenizer, chat_template=chat_template, bos=False)


def char_tokenizer(alphabet: str, *, chat_template: str | None = None) -> PreTrainedTokenizerBase:
    """A character-level tokenizer over a fixed alphabet, which prepends BOS to every text.

    Ids 0-4 are the :data:`SPECIAL_TOKENS`, then ``<unk>`` (id 5, for characters outside the
    alphabet), then the alphabet's characters in the order given (duplicates dropped). Right for
    synthetic tasks: ``char_tokenizer("0123456789+=")`` for three-digit addition.

    Args:
        alphabet: the characters the tokenizer knows.
        chat_template: optional Jinja chat template (e.g. :data:`CHATML_TEMPLATE`).

    Returns:
        A ``transformers`` fast tokenizer; ``tokenizer("12+3").input_ids`` starts with BOS (1).
    """
    tok = require("tokenizers", extra="hf")
    vocab: dict[str, int] = {s: i for i, s in enumerate((*SPECIAL_TOKENS, "<unk>"))}
    for char in alphabet:
        vocab.setdefault(char, len(vocab))
    tokenizer = tok.Tokenizer(tok.models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # Oniguruma rejects (?s); its (?m) makes "." match any character, newline included.
    tokenizer.pre_tokenizer = tok.pre_tokenizers.Split(tok.Regex("(?m)."), behavior="isolated")
    tokenizer.decoder = tok.decoders.Fuse()
    tokenizer.post_processor = tok.processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    _mark_special(tokenizer)
    return _wrap(tokenizer, chat_template=chat_template, bos=True)


def _stdlib_sources(limit_bytes: int = 3_000_000) -> Iterator[str]:
    """The standard library's own ``.py`` files, in a fixed order, up to ``limit_bytes``."""
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    used = 0
    for path in sorted(root.glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        used += len(text)
        yield text
        if used >= limit_bytes:
            return


def bpe_tokenizer(
    texts: Iterable[str] | None = None,
    *,
    vocab_size: int = 2048,
    chat_template: str | None = CHATML_TEMPLATE,
) -> PreTrainedTokenizerBase:
    """A byte-level BPE tokenizer trained on local text (under a second for 3 MB).

    Same pre-tokenizer, decoder and specials as :func:`byte_tokenizer` (so it also round-trips any
    text), plus merges learned from ``texts``: a text costs several times fewer tokens.

    Args:
        texts: the training corpus; by default about 3 MB of the Python standard library's own
            ``.py`` sources (always present, read in a fixed order).
        vocab_size: the vocabulary size including the 261 base tokens.
        chat_template: Jinja chat template; ChatML by default.

    Returns:
        A ``transformers`` fast tokenizer.
    """
    tok = require("tokenizers", extra="hf")
    tokenizer = tok.Tokenizer(tok.models.BPE())
    tokenizer.pre_tokenizer, tokenizer.decoder = _byte_level_parts()
    trainer = tok.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=tok.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts if texts is not None else _stdlib_sources(), trainer)
    _mark_special(tokenizer)
    return _wrap(tokenizer, chat_template=chat_template, bos=False)


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, folder: str | Path) -> Path:
    """Save a tokenizer built here so that transformers 4.46+ and 5.x both load it.

    transformers 5 writes ``tokenizer_class: "TokenizersBackend"`` and a list-valued
    ``extra_special_tokens`` that 4.x cannot read; this rewrites ``tokenizer_config.json`` with
    ``PreTrainedTokenizerFast``, ``additional_special_tokens`` and the two model input names, and
    keeps the chat template both in ``chat_template.jinja`` and inline.

    Args:
        tokenizer: a tokenizer from this module (or any fast tokenizer).
        folder: created if missing.

    Returns:
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    config_path = folder / "tokenizer_config.json"
    config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
    extra = config.pop("extra_special_tokens", None)
    if isinstance(extra, list):
        config["additional_special_tokens"] = extra
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config["model_input_names"] = ["input_ids", "attention_mask"]
    config["padding_side"] = "left"
    if tokenizer.chat_template:
        config["chat_template"] = tokenizer.chat_template
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return folder


# ---------------------------------------------------------------------- models


def _special_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    eos: list[int] = [tokenizer.eos_token_id]
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id and im_end not in eos:
        eos.append(im_end)
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": eos if len(eos) > 1 else eos[0],
        "pad_token_id": tokenizer.pad_token_id,
    }


def _seeded_model(model_class: Any, config: Any, seed: int) -> PreTrainedModel:
    torch = require("torch", extra="hf")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: Any = model_class(config)
    model.eval()
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.generation_config, key, getattr(config, key))
    built: PreTrainedModel = model
    return built


def tiny_llama(
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int | None = None,
    intermediate: int | None = None,
    max_positions: int = 2048,
    tie_embeddings: bool = True,
    init_std: float = 0.02,
    seed: int = 0,
) -> PreTrainedModel:
    """A Llama-architecture causal LM with seeded random weights, in memory, in eval mode.

    The defaults (hidden 64, 2 layers, 4 heads, byte tokenizer) give ~0.1 M parameters, built in
    milliseconds. The global torch RNG is left untouched. BOS/EOS/PAD ids (EOS and
    ``<|im_end|>`` when the tokenizer has it) are copied into the config and generation config.

    Args:
        tokenizer: gives the vocabulary size and special ids; :func:`byte_tokenizer` when None.
        hidden: hidden size.
        layers: decoder layers.
        heads: attention heads (``hidden`` must divide by it).
        kv_heads: key/value heads (grouped-query attention); ``heads`` when None.
        intermediate: MLP size; ``4 * hidden`` when None.
        max_positions: context length.
        tie_embeddings: share input embeddings and LM head.
        init_std: standard deviation of the random weights. The usual 0.02 gives nearly uniform
            next-token distributions (greedy output tends to repeat one token whatever the
            prompt); around 0.3 gives prompt-dependent, varied output, better for tests that
            compare texts.
        seed: weight seed; the same seed gives the same weights.

    Returns:
        A ``LlamaForCausalLM``.
    """
    transformers = require("transformers", extra="hf")
    tokenizer = tokenizer if tokenizer is not None else byte_tokenizer()
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        intermediate_size=intermediate or 4 * hidden,
        max_position_embeddings=max_positions,
        tie_word_embeddings=tie_embeddings,
        initializer_range=init_std,
        **_special_ids(tokenizer),
    )
    return _seeded_model(transformers.LlamaForCausalLM, config, seed)


def tiny_gpt2(
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    hidden: int = 128,
    layers: int = 4,
    heads: int = 4,
    max_positions: int = 64,
    seed: int = 0,
) -> PreTrainedModel:
    """A GPT-2-architecture causal LM with seeded random weights (dropout 0), in eval mode.

    The defaults are the shape that learns three-digit addition with :func:`char_tokenizer`
    in about 1,000 steps (~0.8 M parameters, context 64).

    Args:
        tokenizer: gives the vocabulary size and special ids; :func:`byte_tokenizer` when None.
        hidden: embedding size.
        layers: transformer blocks.
        heads: attention heads.
        max_positions: context length.
        seed: weight seed.

    Returns:
        A ``GPT2LMHeadModel``.
    """
    transformers = require("transformers", extra="hf")
    tokenizer = tokenizer if tokenizer is not None else byte_tokenizer()
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=hidden,
        n_layer=layers,
        n_head=heads,
        n_positions=max_positions,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        **_special_ids(tokenizer),
    )
    return _seeded_model(transformers.GPT2LMHeadModel, config, seed)


def _save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: str | Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    save_tokenizer(tokenizer, folder)
    return folder


def save_tiny_llama(
    folder: str | Path,
    tokenizer: PreTrainedTokenizerBase | None = None,
    **shape: Any,
) -> Path:
    """Build :func:`tiny_llama` and save it with its tokenizer into ``folder``.

    Args:
        folder: created if missing; ``hf:FOLDER`` then names the model.
        tokenizer: :func:`byte_tokenizer` when None.
        **shape: :func:`tiny_llama`'s keyword arguments (``hidden``, ``layers``, ``seed``...).

    Returns:
        The folder (safetensors weights, config, generation config and tokenizer files).
    """
    tokenizer = tokenizer if tokenizer is not None else byte_tokenizer()
    return _save(tiny_llama(tokenizer, **shape), tokenizer, folder)


def save_tiny_gpt2(
    folder: str | Path,
    tokenizer: PreTrainedTokenizerBase | None = None,
    **shape: Any,
) -> Path:
    """Build :func:`tiny_gpt2` and save it with its tokenizer into ``folder``.

    Args:
        folder: created if missing.
        tokenizer: :func:`byte_tokenizer` when None.
        **shape: :func:`tiny_gpt2`'s keyword arguments.

    Returns:
        The folder.
    """
    tokenizer = tokenizer if tokenizer is not None else byte_tokenizer()
    return _save(tiny_gpt2(tokenizer, **shape), tokenizer, folder)


def param_count(model: PreTrainedModel) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    seen: set[int] = set()
    total = 0
    for parameter in model.parameters():
        if id(parameter) not in seen:
            seen.add(id(parameter))
            total += parameter.numel()
    return total
