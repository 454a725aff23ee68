"""Write a tiny random-weight Llama model as GGUF, with a SentencePiece tokenizer, offline.

``write_tiny_gguf(folder)`` trains a byte-fallback BPE tokenizer (vocabulary ~1,000) on Python's
own standard-library sources, then writes a 2-layer, 64-wide Llama (~200 K parameters, F32) with
ChatML markers and template, ready for ``python -m llama_cpp.server --model``. The same seed gives
the same file.

Caveat: the weights are random, so the model writes gibberish and rarely stops on its own:
assert on structure (finish reasons, usage, logprob shapes, JSON syntax), never on content.
``add_dummy_prefix`` is off because the SentencePiece dummy space breaks llama.cpp's grammars.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np

__all__ = ["write_tiny_gguf", "CHATML_TEMPLATE"]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_SPECIALS = ("<|im_start|>", "<|im_end|>")


def _corpus(limit_bytes: int = 600_000) -> list[str]:
    """Lines of the standard library's own sources: a text corpus that needs no download."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    lines: list[str] = []
    size = 0
    for path in sorted(stdlib.glob("*.py")):
        for line in path.read_text(encoding="utf-8", errors="ignore").splitlines():
            if line.strip():
                lines.append(line)
                size += len(line)
        if size >= limit_bytes:
            break
    return lines


def _train_tokenizer(folder: Path, vocab_size: int) -> Path:
    import sentencepiece as spm

    prefix = folder / "tok"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()),
        model_prefix=str(prefix),
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        user_defined_symbols=list(_SPECIALS),
        split_digits=True,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        num_threads=1,
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


def write_tiny_gguf(
    folder: Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    ffn: int = 128,
    vocab_size: int = 1000,
    context: int = 2048,
    seed: int = 0,
) -> Path:
    """Write ``folder/tiny.gguf`` and return its path."""
    import gguf
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    sp = spm.SentencePieceProcessor(model_file=str(_train_tokenizer(folder, vocab_size)))
    n_vocab = sp.get_piece_size()
    pieces, scores, types = [], [], []
    for i in range(n_vocab):
        piece = sp.id_to_piece(i)
        pieces.append(piece.encode("utf-8"))
        if i in (0, 1, 2) or piece in _SPECIALS:
            scores.append(-1000.0)
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_byte(i):
            scores.append(sp.get_score(i))
            types.append(gguf.TokenType.BYTE)
        else:
            scores.append(sp.get_score(i))
            types.append(gguf.TokenType.NORMAL)

    head_dim = hidden // heads
    path = folder / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(layers)
    writer.add_context_length(context)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(10_000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(pieces)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(sp.piece_to_id("<|im_end|>"))
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    writer.add_chat_template(CHATML_TEMPLATE)

    rng = np.random.default_rng(seed)

    def matrix(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)

    def ones() -> np.ndarray:
        return np.ones(hidden, dtype=np.float32)

    kv_dim = kv_heads * head_dim
    writer.add_tensor("token_embd.weight", matrix(n_vocab, hidden))
    for b in range(layers):
        writer.add_tensor(f"blk.{b}.attn_norm.weight", ones())
        writer.add_tensor(f"blk.{b}.attn_q.weight", matrix(hidden, hidden))
        writer.add_tensor(f"blk.{b}.attn_k.weight", matrix(kv_dim, hidden))
        writer.add_tensor(f"blk.{b}.attn_v.weight", matrix(kv_dim, hidden))
        writer.add_tensor(f"blk.{b}.attn_output.weight", matrix(hidden, hidden))
        writer.add_tensor(f"blk.{b}.ffn_norm.weight", ones())
        writer.add_tensor(f"blk.{b}.ffn_gate.weight", matrix(ffn, hidden))
        writer.add_tensor(f"blk.{b}.ffn_up.weight", matrix(ffn, hidden))
        writer.add_tensor(f"blk.{b}.ffn_down.weight", matrix(hidden, ffn))
    writer.add_tensor("output_norm.weight", ones())
    writer.add_tensor("output.weight", matrix(n_vocab, hidden))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
