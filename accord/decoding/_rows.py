"""A batch of sequences decoded by one model with one KV cache: per-row lengths through holes.

Cooperative decoders move every row of a batch forward together, but rows do not advance by the
same number of tokens (a speculative round accepts 3 draft tokens in one row and 0 in another).
:class:`ModelRows` keeps one batched KV cache of equal width for all rows and marks what a row
does not use as a *hole*: a position whose attention-mask bit is 0. Feeding appends the same
number of positions to every row (shorter rows are padded with holes); rejecting tokens turns a
row's last positions into holes. Position ids count each row's real tokens only, so a row reads
exactly what it would read alone, and its outputs match unbatched decoding up to float rounding.

Every method is blocking and must run on the model's worker thread
(:meth:`~accord.backends.hf.HFBackend.submit`). Caveat: holes stay in the cache, so a row that
rejects often grows the cache faster than its text (fine for the short generations of agents).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from accord._lazy import require
from accord.backends.hf import Loaded

__all__ = ["ModelRows"]


class ModelRows:
    """One model's view of a batch: cache, attention mask and real-token counts per row.

    Args:
        loaded: the model.
        prompts: token ids per row (each non-empty).
    """

    def __init__(self, loaded: Loaded, prompts: Sequence[Sequence[int]]) -> None:
        self.loaded = loaded
        torch = require("torch", extra="hf")
        self.mask = torch.zeros((len(prompts), 0), dtype=torch.long)
        """Attention mask over the cache: 1 for a real token, 0 for a hole."""
        self.real = [0] * len(prompts)
        """Real tokens per row (the next position id)."""
        self.cache: Any = None
        self.tokens_fed = 0
        """Real tokens fed through the model (every row, prompts included)."""
        self.forwards = 0
        params = inspect.signature(loaded.model.forward).parameters
        self._cache_keyword = "cache" if "cache" in params else "past_key_values"
        self.last: list[Any] = [None] * len(prompts)
        """Per row, the next-token logits after its last real token (float32, CPU)."""
        self.feed([list(p) for p in prompts], left=True)

    def feed(self, tokens: Sequence[Sequence[int]], *, left: bool = False) -> list[Any]:
        """Append ``tokens[r]`` to row r in one batched forward pass.

        Args:
            tokens: per row, the tokens to append (may be empty).
            left: pad short rows on the left (the prompts), else on the right.

        Returns:
            Per row, the logits after each appended token, shape (len(tokens[r]), vocab),
            float32 on the CPU. :attr:`last` is updated for rows that got tokens.
        """
        torch = require("torch", extra="hf")
        width = max((len(t) for t in tokens), default=0)
        if width == 0:
            return [None] * len(tokens)
        pad = self.loaded.pad_id
        ids = torch.full((len(tokens), width), pad, dtype=torch.long)
        positions = torch.zeros((len(tokens), width), dtype=torch.long)
        columns = torch.zeros((len(tokens), width), dtype=torch.long)
        for row, new in enumerate(tokens):
            start = width - len(new) if left else 0
            columns[row, start : start + len(new)] = 1
            base = self.real[row]
            if new:
                ids[row, start : start + len(new)] = torch.tensor(list(new), dtype=torch.long)
            positions[row] = base  # holes read a harmless position
            positions[row, start : start + len(new)] = torch.arange(base, base + len(new))
            self.real[row] += len(new)
        self.mask = mask = torch.cat([self.mask, columns], dim=1)
        device = self.loaded.device
        kwargs: dict[str, Any] = {"use_cache": True}
        if self.cache is not None:
            kwargs[self._cache_keyword] = self.cache
        with torch.inference_mode():
            out = self.loaded.model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                **kwargs,
            )
            logits = out.logits.float().cpu()
        self.cache = out["cache"] if "cache" in out else out.get("past_key_values")
        self.forwards += 1
        result: list[Any] = []
        for row, new in enumerate(tokens):
            start = width - len(new) if left else 0
            mine = logits[row, start : start + len(new)]
            if len(new):
                self.last[row] = mine[-1]
            self.tokens_fed += len(new)
            result.append(mine)
        return result

    def reject(self, row: int, count: int) -> None:
        """Turn the last ``count`` real tokens of ``row`` into holes (their cache is ignored)."""
        if count <= 0:
            return
        mask = self.mask[row]
        real = mask.nonzero().flatten()[-count:]
        mask[real] = 0
        self.real[row] -= count
        self.last[row] = None
