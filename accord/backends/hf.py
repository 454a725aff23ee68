"""``HFBackend``: a local Hugging Face transformers causal LM behind accord's backend protocol.

``accord.backend("hf:Qwen/Qwen2.5-0.5B-Instruct")`` or ``accord.backend("hf:./path/to/model")``
gives one shared instance per model and options, so every agent naming a model uses one loaded
copy. The backend

- renders messages with the tokenizer's chat template; a tokenizer without one is a plain
  completion model: the prompt is the messages' text as it is (BOS first when the tokenizer adds
  one), so a base model reads exactly what the caller wrote (see :mod:`~accord.backends._hf_prompt`);
- runs on cuda, mps or cpu, chosen automatically or given, in bfloat16 / float16 / float32;
- batches requests that arrive together (the debaters of one round) into one left-padded
  ``generate()``, bounded by ``max_batch_size`` rows and ``max_wait_ms``; greedy output is the
  same batched as alone, and seeded samples share batches with one generator per row, so a seed
  gives the same text however requests arrive (policy in :mod:`accord.backends._hf_batch`);
- honours temperature, top-p, seed, ``n``, ``max_tokens``, stop strings, logprobs, and streams;
- asks for JSON by instructions when a request has a ``response_schema`` (validation and re-asks
  are the agent's job: ``capabilities.structured_output`` is False);
- offers the logits operations of :class:`~accord.backends.base.LogitsBackend`
  (``next_token_logprobs``, ``score``) and step-wise decoding with a KV cache (``start``,
  ``step``) for token-level ensembles.

Forward passes never run on the event loop: they run in one worker thread per backend, which
also makes sure a model never runs two of them at once. Caveat: the model loads on first use
(or ``await backend.load()``); a missing folder, or a hub id that is not cached while offline,
fails at construction with a :class:`~accord.errors.ConfigError` naming the fixes.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from accord._lazy import require
from accord._log import get_logger
from accord.backends import _guard
from accord.backends._hf_batch import Batcher, HFStats, Outcome, Pending
from accord.backends._hf_generate import Sampling, first_stop
from accord.backends._hf_generate import _held_back as held_back
from accord.backends._hf_load import Loaded, check_source, load, resolve_device, resolve_dtype
from accord.backends._hf_logits import (
    DecodeState,
    next_token_logprobs,
    score_tokens,
    start_decoding,
    step_decoding,
)
from accord.backends._hf_prompt import chat_messages, render_prompt
from accord.backends._hf_queue import QueuedBackend
from accord.backends._hf_run import check_length, model_error, run_batch
from accord.backends._hf_sample import row_seed, sample_from, warp
from accord.backends.base import Capabilities, ChatMessage, Request
from accord.errors import AccordError, ConfigError

__all__ = [
    "HFBackend",
    "HFStats",
    "DecodeState",
    # The local backend's machinery, shared with the cooperative decoders (accord.decoding) and
    # token-level ensembles (accord.ensemble), which batch and decode on the same queues:
    "Batcher",
    "Loaded",
    "Outcome",
    "Pending",
    "QueuedBackend",
    "Sampling",
    "chat_messages",
    "check_length",
    "first_stop",
    "held_back",
    "model_error",
    "render_prompt",
    "row_seed",
    "sample_from",
    "warp",
]

log = get_logger(__name__)

T = TypeVar("T")
_LOADING = threading.Lock()
"""``from_pretrained`` is not thread-safe (it patches module-level state while it builds a
model), so models load one at a time, even when several backends load at once."""
Prompt = str | Sequence[int]
"""A prompt for the logits operations: text (encoded with no special tokens added) or token ids."""


class HFBackend(QueuedBackend):
    """A local transformers causal LM and its tokenizer.

    Args:
        model: a local folder (``./tiny``, ``/models/qwen``) or a hub id
            (``Qwen/Qwen2.5-0.5B-Instruct``).
        device: ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``; None picks cuda, then mps,
            then cpu.
        dtype: a ``torch.dtype`` or its name; None picks bfloat16 on cuda, float16 on mps,
            float32 on cpu.
        max_batch_size: most rows in one ``generate()`` call.
        max_wait_ms: how long the first request of a batch waits for others to join it.
        max_new_tokens: the limit for requests without ``max_tokens``.
        revision: hub revision (branch, tag or commit).
        trust_remote_code: allow model code from the hub (off by default).
        generate_kwargs: extra ``generate()`` arguments for every call (e.g.
            ``{"repetition_penalty": 1.1}``); they override accord's own.

    Raises:
        MissingDependencyError: torch or transformers is not installed (``accord[hf]``).
        ConfigError: a bad option, a missing folder, or a hub id that is not cached while the
            hub is offline.

    Temperature None or 0 means greedy decoding; ``n`` greedy candidates are copies of one
    (generated, and counted in usage, once). Sampling keeps the model's own generation defaults
    that a request does not set (``top_k``, ``repetition_penalty``...), unless
    ``generate_kwargs`` overrides them. Logprobs are those of the model's raw distribution.

    Example::

        backend = HFBackend("./tiny", max_batch_size=8)
        completion = await backend.complete(Request(messages=(ChatMessage(role="user",
                                                                          content="Hi"),)))
    """

    capabilities = Capabilities(
        streaming=True, structured_output=False, n=True, logprobs=True, logits=True
    )

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: Any = None,
        max_batch_size: int = 8,
        max_wait_ms: float = 5.0,
        max_new_tokens: int = 512,
        revision: str | None = None,
        trust_remote_code: bool = False,
        generate_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be at least 1, got {max_batch_size}.")
        if max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms must not be negative, got {max_wait_ms}.")
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
        require("torch", extra="hf")
        require("transformers", extra="hf")
        self.model = model
        self.name = f"hf:{model}"
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.max_new_tokens = max_new_tokens
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self._source = check_source(model, revision=revision)
        self._revision = revision
        self._trust_remote_code = trust_remote_code
        self._generate_kwargs = dict(generate_kwargs or {})
        self.stats = HFStats()
        """Counters of generation work: ``stats.batches`` < ``stats.requests`` means batching."""
        self._loaded: Loaded | None = None
        self._load_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="accord-hf")
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batcher] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        state = "loaded" if self._loaded is not None else "not loaded"
        return f"HFBackend({self.model!r}, device={str(self.device)!r}, {state})"

    # ---------------------------------------------------------------- loading

    def _ensure_loaded(self) -> Loaded:
        _guard.check_real_call_allowed(self.name)
        with self._load_lock:
            if self._loaded is None:
                started = time.perf_counter()
                with _LOADING:
                    loaded = load(
                        self._source,
                        device=self.device,
                        dtype=self.dtype,
                        revision=self._revision,
                        trust_remote_code=self._trust_remote_code,
                    )
                self._loaded = loaded
                log.info(
                    "hf_model_loaded",
                    model=self.model,
                    device=str(self.device),
                    dtype=str(self.dtype),
                    seconds=round(time.perf_counter() - started, 3),
                )
            return self._loaded

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Queue a blocking ``fn`` on this backend's model thread from any thread but that one.

        For decoders that drive several models from their own thread (:mod:`accord.decoding`):
        wait on the returned future with ``.result()``; never call it from the model thread
        itself (the future would wait on itself).
        """
        return self._executor.submit(fn)

    async def _in_worker(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the backend's worker thread (never on the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def run_in_worker(self, fn: Callable[[], T]) -> T:
        """Run a blocking ``fn`` in this backend's model thread and return its result.

        For code that drives :attr:`hf_model` itself (token-level ensembles, custom scoring):
        ``fn`` runs after the work already queued and never overlaps another forward pass of
        this model. Its exceptions propagate unchanged.
        """
        return await self._in_worker(fn)

    async def load(self) -> None:
        """Load model and tokenizer now, off the event loop (concurrent calls load once).

        Raises:
            ConfigError: the model cannot be loaded; the message says how to point elsewhere.
        """
        await self._guarded(self._ensure_loaded, "loading")

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._loaded is not None

    @property
    def tokenizer(self) -> Any:
        """The transformers tokenizer (loads the model synchronously if needed: in async code,
        ``await backend.load()`` first)."""
        return self._ensure_loaded().tokenizer

    @property
    def hf_model(self) -> Any:
        """The transformers model (same loading caveat as :attr:`tokenizer`). Run forward passes
        through this backend's methods, not on it directly, while the backend is in use."""
        return self._ensure_loaded().model

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """Token ids that end a generation (model EOS, tokenizer EOS, chat end markers)."""
        return self._ensure_loaded().eos_ids

    def chat_prompt(self, messages: Request | Sequence[ChatMessage]) -> str:
        """The exact prompt text ``complete`` would feed the model for these messages."""
        return render_prompt(self._ensure_loaded(), chat_messages(messages), self.model)

    def encode(self, text: str) -> list[int]:
        """Text to token ids as the logits operations see it (no special tokens added)."""
        return self._ensure_loaded().encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        """Token ids to text, special tokens dropped."""
        return self._ensure_loaded().decode(list(ids))

    def close(self) -> None:
        """Release the model and the worker thread; later calls load it again."""
        self._executor.shutdown(wait=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="accord-hf")
        self._loaded = None
        self._batchers = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------- generation

    def _group(self, sampling: Sampling) -> Hashable | None:
        """Seeded sampling requests share batches (one generator per row); others by settings."""
        return "seeded" if sampling.do_sample and sampling.seed is not None else None

    def _run_batch(self, items: list[Pending]) -> list[Outcome]:
        """Load if needed, then generate a batch (worker thread). Errors stay per request."""
        try:
            loaded = self._ensure_loaded()
        except Exception as exc:
            return [model_error(self.model, exc, "loading")] * len(items)
        return run_batch(
            loaded,
            items,
            model=self.model,
            generate_kwargs=self._generate_kwargs,
            stats=self.stats,
        )

    # ---------------------------------------------------------------- logits

    def _ids(self, loaded: Loaded, prompt: Prompt) -> list[int]:
        return loaded.encode(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]

    async def next_token_logprobs(
        self, prompts: Sequence[Prompt], *, top_k: int | None = None
    ) -> list[dict[int, float]]:
        """Log-probabilities of the next token after each prompt, in one batched forward pass.

        Args:
            prompts: texts (encoded with no special tokens added: render chat prompts with
                :meth:`chat_prompt`) or token id sequences.
            top_k: keep the ``top_k`` most likely tokens; the whole vocabulary when None.

        Returns:
            Per prompt, ``{token_id: logprob}``.
        """

        def run() -> list[dict[int, float]]:
            loaded = self._ensure_loaded()
            ids = [self._ids(loaded, p) for p in prompts]
            for one in ids:
                check_length(self.model, loaded, len(one))
            return next_token_logprobs(loaded, ids, top_k)

        return await self._guarded(run, "computing next-token log-probabilities")

    async def _guarded(self, fn: Callable[[], T], doing: str) -> T:
        try:
            return await self._in_worker(fn)
        except AccordError:
            raise
        except Exception as exc:
            raise model_error(self.model, exc, doing) from exc

    async def score(self, prompt: Prompt, continuation: Prompt) -> list[float]:
        """Log-probability of each token of ``continuation`` after ``prompt`` (one forward pass).

        Prompt and continuation are tokenized separately; pass token ids to control the split.
        """

        def run() -> list[float]:
            loaded = self._ensure_loaded()
            head, tail = self._ids(loaded, prompt), self._ids(loaded, continuation)
            check_length(self.model, loaded, len(head) + len(tail))
            return score_tokens(loaded, head, tail)

        return await self._guarded(run, "scoring a continuation")

    async def start(self, prompt: Prompt, *, top_k: int | None = None) -> DecodeState:
        """Begin step-wise decoding: run the prompt once and keep its KV cache.

        Returns:
            A :class:`DecodeState` whose ``logprobs`` is the first next-token distribution.
        """

        def run() -> DecodeState:
            loaded = self._ensure_loaded()
            ids = self._ids(loaded, prompt)
            check_length(self.model, loaded, len(ids))
            return start_decoding(loaded, ids, top_k, self)

        return await self._guarded(run, "starting step-wise decoding")

    async def step(
        self, state: DecodeState, token_id: int, *, top_k: int | None = None
    ) -> dict[int, float]:
        """Feed one token to a :class:`DecodeState` and return the next distribution.

        Raises:
            ConfigError: the state was made by another backend.
        """
        if state.owner is not self:
            raise ConfigError("this DecodeState was made by another backend; step it there.")

        def run() -> dict[int, float]:
            loaded = self._ensure_loaded()
            check_length(self.model, loaded, len(state.ids) + 1)
            return step_decoding(loaded, state, token_id, top_k)

        return await self._guarded(run, "decoding a step")
