"""A local model as a token-level ensemble drives it: one sequence, its KV cache, its logits.

:class:`LocalModel` wraps an :class:`~accord.backends.hf.HFBackend` (its transformers model,
tokenizer and end-of-sequence ids). :class:`Sequence` is one sequence being decoded: token ids
can be appended without running the model, and :meth:`Sequence.sync` then feeds every token not
yet seen in one cached forward pass and returns the next-token log-probabilities. This is what
lets a gated ensemble skip a model for several steps and catch it up in one pass, and lets the
mixed-tokenizer path take back a model's last token (``DynamicCache.crop``) when re-tokenising
the accepted text merges it with the next piece.

Forward passes run on each model's own worker thread (``HFBackend.run_in_worker``), never on the
event loop: a model never runs two passes at once, even when its backend also serves plain
requests, and different models' passes of one step run at the same time.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence as Seq
from typing import Any

from accord._lazy import require
from accord.errors import ConfigError

__all__ = ["LocalModel", "Sequence", "sync_all"]


class LocalModel:
    """An HF backend's model, tokenizer and end ids, as the token loop needs them."""

    def __init__(self, backend: Any) -> None:
        for attribute in (
            "hf_model",
            "tokenizer",
            "encode",
            "decode",
            "load",
            "chat_prompt",
            "run_in_worker",
        ):
            if not hasattr(backend, attribute):
                raise ConfigError(
                    f"token ensembles need local models with their logits; {backend!r} has no "
                    f"{attribute!r}. Use HFBackend models (accord.backend('hf:./folder'))."
                )
        self.backend = backend
        self.name: str = getattr(backend, "name", repr(backend))
        self.model: Any = None
        self.tokenizer: Any = None
        self.eos_ids: frozenset[int] = frozenset()
        self.vocab_size = 0
        self._cache_keyword = "past_key_values"

    async def load(self) -> None:
        """Load the model (off the event loop) and read what the loop needs from it."""
        await self.backend.load()
        if self.model is None:
            self.model = self.backend.hf_model
            self.tokenizer = self.backend.tokenizer
            self.eos_ids = frozenset(int(i) for i in self.backend.eos_token_ids)
            head = self.model.get_output_embeddings()
            self.vocab_size = int(head.weight.shape[0]) if head is not None else len(self.tokenizer)
            params = inspect.signature(self.model.forward).parameters
            self._cache_keyword = "cache" if "cache" in params else "past_key_values"

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self.backend.encode(text)
        return ids

    def decode(self, ids: Seq[int]) -> str:
        text: str = self.backend.decode(list(ids))
        return text

    def forward(self, ids: list[int], cache: Any) -> tuple[Any, Any]:
        """One cached forward over ``ids``; returns (log-probabilities of the next token, cache)."""
        torch = require("torch", extra="hf")
        device = self.model.device
        with torch.inference_mode():
            out = self.model(
                input_ids=torch.tensor([ids], device=device),
                use_cache=True,
                **{self._cache_keyword: cache},
            )
            logprobs = torch.log_softmax(out.logits[0, -1, :].float(), dim=-1).cpu()
        new_cache = out["cache"] if "cache" in out else out.get("past_key_values")
        return logprobs, new_cache


class Sequence:
    """One sequence of one model: its token ids, the KV cache, and the latest distribution."""

    def __init__(self, lm: LocalModel, prompt: list[int]) -> None:
        if not prompt:
            raise ConfigError(f"model {lm.name!r} got an empty prompt; give at least one token.")
        self.lm = lm
        self.ids = list(prompt)
        self.prompt_len = len(prompt)
        self.fed = 0
        """How many of :attr:`ids` the cache holds."""
        self.cache: Any = None
        self.logprobs: Any = None
        """Next-token log-probabilities after all of :attr:`ids` (None until synced)."""
        self.forwards = 0
        """Forward passes run."""
        self.tokens_fed = 0
        """Tokens fed through the model (prompt included)."""

    @property
    def generated(self) -> list[int]:
        return self.ids[self.prompt_len :]

    @property
    def stale(self) -> bool:
        return self.fed < len(self.ids) or self.logprobs is None

    def append(self, ids: Seq[int]) -> None:
        """Add tokens without running the model (the next :meth:`sync` feeds them)."""
        if ids:
            self.ids.extend(int(i) for i in ids)
            self.logprobs = None

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` ids (never fewer than the prompt), cropping the cache."""
        length = max(length, self.prompt_len)
        if length >= len(self.ids):
            return
        del self.ids[length:]
        self.logprobs = None
        if self.fed >= length:
            self._crop(length - 1)  # the last kept token must be fed again for its logits

    def _crop(self, keep: int) -> None:
        """Keep the cache of the first ``keep`` tokens (start over when it cannot be cropped).

        ``crop`` is given a negative count, which transformers 4.x (absolute length or a count
        from the end) and 5.x (a count from the end only) both read as "remove that many"."""
        remove = self.fed - keep
        if remove <= 0:
            return
        cache = self.cache
        if keep > 0 and cache is not None and hasattr(cache, "crop"):
            cache.crop(-remove)
            self.fed = keep
        else:
            self.cache, self.fed = None, 0

    def sync(self) -> Any:
        """Feed the unseen tokens in one forward pass (blocking); return the distribution."""
        if not self.stale:
            return self.logprobs
        if self.fed >= len(self.ids):  # no logits kept for the last token: feed it again
            self._crop(len(self.ids) - 1)
        new = self.ids[self.fed :]
        self.logprobs, self.cache = self.lm.forward(new, self.cache)
        self.forwards += 1
        self.tokens_fed += len(new)
        self.fed = len(self.ids)
        return self.logprobs


async def sync_all(sequences: Seq[Sequence]) -> None:
    """Bring every stale sequence up to date, each on its model's worker thread (at once)."""
    stale = [s for s in sequences if s.stale]
    if len(stale) == 1:
        await stale[0].lm.backend.run_in_worker(stale[0].sync)
    elif stale:
        # A worker thread cannot be cancelled: wait for every forward pass to end before
        # reporting a failure, so none is still running when the caller has raised.
        results = await asyncio.gather(
            *(s.lm.backend.run_in_worker(s.sync) for s in stale), return_exceptions=True
        )
        error = next((r for r in results if isinstance(r, BaseException)), None)
        if error is not None:
            raise error
