"""Token surfaces: the bytes each token stands for, so tokens of different tokenizers can meet.

Models with different tokenizers share no token ids, only text. :class:`Vocabulary` gives every
token of one tokenizer its *surface*, the exact bytes it adds to the text: byte-level BPE symbols
(GPT-2's ``Ġ`` for a space) are mapped back to bytes, SentencePiece's ``▁`` becomes a space and its
``<0x41>`` byte-fallback pieces become bytes, other tokens are their UTF-8 text. Surfaces are
bytes rather than text so that a token holding half of a UTF-8 character still has one.
:meth:`Vocabulary.encode` goes the other way, re-tokenising bytes in this tokenizer.

Caveat: special and added tokens (BOS, chat markers) have no surface; the end-of-sequence tokens
are matched by id, not by text. SentencePiece tokenizers that add a dummy prefix space when
encoding will see a leading space in re-tokenised pieces.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

__all__ = ["Vocabulary", "byte_decoder"]

_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@cache
def byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: printable stand-in character -> byte value."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping: dict[str, int] = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            mapping[chr(256 + extra)] = b
            extra += 1
    return mapping


def _decoder_types(spec: Any) -> set[str]:
    if not isinstance(spec, dict):
        return set()
    found = {str(spec.get("type", ""))}
    for child in spec.get("decoders", []) or []:
        found |= _decoder_types(child)
    return found


class Vocabulary:
    """Surfaces of one tokenizer's tokens, and re-tokenisation of byte strings."""

    def __init__(self, tokenizer: Any, eos_ids: frozenset[int]) -> None:
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
        types = _decoder_types(spec.get("decoder"))
        if "ByteLevel" in types:
            self.kind = "bytelevel"
        elif types & {"Metaspace", "ByteFallback", "Replace"}:
            self.kind = "sentencepiece"
        else:
            self.kind = "plain"
        specials = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
        self.surfaces: list[bytes | None] = []
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        for token_id, piece in enumerate(pieces):
            if token_id in specials or piece is None:
                self.surfaces.append(None)
            else:
                self.surfaces.append(self._piece_bytes(str(piece)))
        self.by_surface: dict[bytes, int] = {}
        for token_id, surface in enumerate(self.surfaces):
            if surface:
                self.by_surface.setdefault(surface, token_id)
        self._encoded: dict[bytes, list[int] | None] = {}

    def _piece_bytes(self, piece: str) -> bytes | None:
        if self.kind == "bytelevel":
            table = byte_decoder()
            try:
                return bytes(table[c] for c in piece)
            except KeyError:
                return piece.encode("utf-8")
        if self.kind == "sentencepiece":
            match = _BYTE_PIECE.match(piece)
            if match:
                return bytes([int(match.group(1), 16)])
            return piece.replace("▁", " ").encode("utf-8")
        return piece.encode("utf-8")

    def surface(self, token_id: int) -> bytes | None:
        """The bytes token ``token_id`` adds to the text (None for special tokens)."""
        return self.surfaces[token_id] if 0 <= token_id < len(self.surfaces) else None

    def encode(self, data: bytes) -> list[int] | None:
        """Token ids of ``data`` in this tokenizer, or None when it cannot represent them
        (bytes that are not valid UTF-8, for a tokenizer that is not byte-level)."""
        if not data:
            return []
        if data in self._encoded:
            return self._encoded[data]
        ids: list[int] | None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        elif self.kind == "bytelevel":
            inverse = {b: c for c, b in byte_decoder().items()}
            symbols = "".join(inverse[b] for b in data)
            ids = [t.id for t in self.tokenizer.backend_tokenizer.model.tokenize(symbols)]
        else:
            ids = None
        if len(self._encoded) < 65_536:
            self._encoded[data] = ids
        return ids
