"""The machinery every cooperative decoder shares: queue, rows, models' threads, usage.

A cooperative decoder (:class:`~accord.decoding.Speculative`, :class:`~accord.decoding.Contrastive`,
:class:`~accord.decoding.ProxyTuned`) is a backend over several local models
(:class:`~accord.backends.hf.HFBackend`) that share one tokenizer. Requests are queued and
batched exactly as ``HFBackend`` batches them (:class:`~accord.backends._hf_queue.QueuedBackend`;
every request may join every batch, since each row samples with its own settings and generator).
A batch runs on the first model's worker thread (the target, expert or base): it renders and
tokenizes each prompt with that model's tokenizer (its chat template, or the text as it is without
one) and drives the models through :class:`~accord.decoding._rows.ModelRows`: the first model's
passes run right there, every other model's pass is submitted to that model's worker thread
(several models' passes of one step run at once). The event loop never runs a forward pass, and
a model never runs two passes at once. Caveat: while a batch runs, other work for the first model
(plain ``HFBackend`` requests to it) waits for the batch to end.

A :class:`Row` ends at an end-of-sequence token, a stop string, its ``max_tokens``, the end of the
context, or when its caller goes away (checked every step); streaming rows get their text as it
grows, holding back any tail that could still become a stop string. Usage counts one request, the
prompt tokens and the generated tokens, and ``usage.by_model`` adds each model's own figures:
its prompt tokens and the tokens it ran after the prompt (a speculative target's verified tokens,
a draft's drafted ones).
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from accord._lazy import require
from accord.backends.base import Capabilities, ChatMessage, Choice, Completion, Request
from accord.backends.hf import (
    Batcher,
    Loaded,
    Outcome,
    Pending,
    QueuedBackend,
    Sampling,
    chat_messages,
    check_length,
    first_stop,
    model_error,
    render_prompt,
    row_seed,
    sample_from,
    warp,
)
from accord.backends.hf import held_back as _held_back
from accord.decoding._rows import ModelRows
from accord.errors import AccordError, ConfigError
from accord.messages import Usage

__all__ = ["CooperativeBackend", "Row", "Batch", "resolve_local"]

T = TypeVar("T")


def resolve_local(model: Any, role: str) -> Any:
    """An ``HFBackend`` from an instance, an ``"hf:..."`` name or a folder.

    Raises:
        ConfigError: the model is not a local transformers model.
    """
    if isinstance(model, str | os.PathLike):
        from accord.backends import backend

        name = os.fspath(model)
        model = backend(name if name.startswith("hf:") else f"hf:{name}")
    for attribute in ("submit", "_ensure_loaded", "load", "name"):
        if not hasattr(model, attribute):
            raise ConfigError(
                f"the {role} model must be a local model with its logits (HFBackend: "
                f"'hf:./folder'), not {model!r}."
            )
    return model


@dataclass(eq=False)
class Row:
    """One sequence being generated (a request with ``n`` samples has ``n`` rows)."""

    item: Pending
    prompt: list[int]
    sampling: Sampling
    generator: Any
    limit: int
    """The most tokens it may generate (``max_tokens``, capped by the context)."""
    models: int
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    done: bool = False
    cancelled: bool = False
    finish: str = "length"
    counted: int = 0
    """Tokens generated, an ending EOS included."""
    cut: bool = False
    """Its text was cut at a stop string."""
    fed: list[int] = field(default_factory=list)
    """Tokens each model ran for this row (prompt included)."""
    forwards: list[int] = field(default_factory=list)
    """Forward passes each model ran that included this row's tokens."""

    def __post_init__(self) -> None:
        self.fed = [0] * self.models
        self.forwards = [0] * self.models

    @property
    def greedy(self) -> bool:
        return not self.sampling.do_sample

    def probs(self, logits: Any) -> Any:
        """This row's sampling distribution from logits (temperature, then top-p)."""
        return warp(logits, self.sampling.temperature, None, self.sampling.top_p)

    def pick(self, logits: Any) -> int:
        """Greedy: the argmax (lowest id on ties); sampled: a draw with the row's generator."""
        if self.greedy:
            return int(logits.argmax())
        return sample_from(self.probs(logits), self.generator)

    def uniform(self) -> float:
        """A uniform draw in [0, 1) from the row's generator."""
        torch = require("torch", extra="hf")
        return float(torch.rand((), generator=self.generator))


class Batch:
    """The rows of one batch and the models that decode them (blocking, coordinating thread)."""

    def __init__(self, owner: CooperativeBackend, loaded: list[Loaded], rows: list[Row]) -> None:
        self.owner = owner
        self.loaded = loaded
        self.rows = rows
        primary = loaded[0]
        self.eos = frozenset(primary.eos_ids)
        self.vocab = min(_head_size(one) for one in loaded)
        self.states: list[ModelRows] = []

    def on_models(self, calls: Sequence[tuple[int, Callable[[], T]]]) -> list[T]:
        """Run each ``(model index, fn)`` on that model's worker thread, all at once; wait."""
        return self.owner.on_models([(self.owner.models[i], fn) for i, fn in calls])

    def start(self, models: Sequence[int] | None = None) -> None:
        """Feed the prompts to every model (concurrently) and keep their states."""
        indices = list(range(len(self.loaded))) if models is None else list(models)
        prompts = [row.prompt for row in self.rows]

        def starter(i: int) -> Callable[[], ModelRows]:
            return lambda: ModelRows(self.loaded[i], prompts)

        self.states = self.on_models([(i, starter(i)) for i in indices])
        for row in self.rows:
            for i in indices:
                row.fed[i] += len(row.prompt)
                row.forwards[i] += 1

    def feed(self, calls: Sequence[tuple[int, Sequence[Sequence[int]]]]) -> list[list[Any]]:
        """Append tokens per row to several models at once; per model, per row, the logits."""

        def feeder(i: int, tokens: Sequence[Sequence[int]]) -> Callable[[], list[Any]]:
            return lambda: self.states[i].feed(tokens)

        for i, tokens in calls:
            for row, new in zip(self.rows, tokens, strict=True):
                row.fed[i] += len(new)
                row.forwards[i] += 1 if new else 0
        return self.on_models([(i, feeder(i, t)) for i, t in calls])

    @property
    def live(self) -> list[int]:
        """Indices of rows still generating (cancelled callers are stopped here)."""
        out = []
        for index, row in enumerate(self.rows):
            if not row.done and row.item.is_cancelled():
                row.done = row.cancelled = True
            if not row.done:
                out.append(index)
        return out

    def push(self, row: Row, token: int) -> bool:
        """Append one generated token to ``row``; False once the row has ended."""
        if row.done:
            return False
        row.counted += 1
        if token in self.eos:
            row.done, row.finish = True, "stop"
            return False
        row.tokens.append(token)
        stops, sink = row.item.stops, row.item.sink
        if not stops and sink is None:  # the text is decoded once, at the end
            if len(row.tokens) >= row.limit:
                row.done, row.finish = True, "length"
            return not row.done
        text = self.loaded[0].decode(row.tokens)
        cut = first_stop(text, stops) if stops else None
        if cut is not None:
            row.done, row.finish, text = True, "stop", text[:cut]
            row.cut = True
        elif len(row.tokens) >= row.limit:
            row.done, row.finish = True, "length"
        row.text = text
        if sink is not None:
            safe = len(text) if row.done else len(text) - _held_back(text, stops)
            if safe > len(sink.emitted) and text.startswith(sink.emitted):
                piece = text[len(sink.emitted) : safe]
                sink.emitted += piece
                sink.push(piece)
        return not row.done


class _LeadThread(Executor):
    """Runs a batch on the first model's worker thread (whatever executor it has now)."""

    def __init__(self, lead: Any) -> None:
        self.lead = lead

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = self.lead.submit(lambda: fn(*args, **kwargs))
        return future


def _head_size(loaded: Loaded) -> int:
    head = loaded.model.get_output_embeddings()
    return int(head.weight.shape[0]) if head is not None else len(loaded.tokenizer)


class CooperativeBackend(QueuedBackend):
    """Base of the cooperative decoders (module docstring): a backend over several local models.

    Subclasses give ``_decode(batch)``, which runs the batch's rows to their end.
    """

    capabilities = Capabilities(streaming=True, structured_output=False, n=True)

    def __init__(
        self,
        models: Sequence[tuple[str, Any]],
        *,
        name: str,
        max_batch_size: int = 8,
        max_wait_ms: float = 5.0,
        max_new_tokens: int = 512,
    ) -> None:
        if max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be at least 1, got {max_batch_size}.")
        if max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms must not be negative, got {max_wait_ms}.")
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
        self.roles = tuple(role for role, _ in models)
        self.models = [resolve_local(model, role) for role, model in models]
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.max_new_tokens = max_new_tokens
        self._executor = _LeadThread(self.models[0])
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batcher] = (
            weakref.WeakKeyDictionary()
        )
        self._checked = False
        self._check_lock = threading.Lock()
        self.batches = 0
        """Batches run (fewer than :attr:`requests` means concurrent requests shared passes)."""
        self.requests = 0
        """Requests that reached a batch."""

    def __repr__(self) -> str:
        parts = ", ".join(f"{r}={m.name!r}" for r, m in zip(self.roles, self.models, strict=True))
        return f"{type(self).__name__}({parts})"

    def _group(self, sampling: Sampling) -> Hashable | None:
        return "rows"  # every row carries its own settings and generator

    def _check(self, loaded: list[Loaded]) -> None:
        """Refuse models whose tokenizers differ (once)."""
        with self._check_lock:
            if self._checked:
                return
            first = loaded[0].tokenizer.get_vocab()
            for role, model, one in zip(self.roles, self.models, loaded, strict=True):
                if one.tokenizer.get_vocab() != first:
                    raise ConfigError(
                        f"{type(self).__name__} needs models that share one tokenizer, but the "
                        f"{role} model {model.name!r} has another vocabulary "
                        f"({len(one.tokenizer)} tokens vs {len(loaded[0].tokenizer)} for the "
                        f"{self.roles[0]} model {self.models[0].name!r}). Pair models of one "
                        "family (same tokenizer), or use accord.TokenEnsemble for mixed ones."
                    )
            self._checked = True

    def on_models(self, calls: Sequence[tuple[Any, Callable[[], T]]]) -> list[T]:
        """Run each ``(model, fn)`` on that model's worker thread, all at once, and wait.

        The batch runs on the first model's worker thread, so its calls run inline (no thread
        hop); the others are submitted to their threads first, so they overlap with it.
        """
        lead = self.models[0]
        futures = {i: model.submit(fn) for i, (model, fn) in enumerate(calls) if model is not lead}
        inline = {i: fn() for i, (model, fn) in enumerate(calls) if model is lead}
        return [inline[i] if i in inline else futures[i].result() for i in range(len(calls))]

    def _load_all(self) -> list[Loaded]:
        loaded = self.on_models([(m, m._ensure_loaded) for m in self.models])
        self._check(loaded)
        return loaded

    async def load(self) -> None:
        """Load every model (off the event loop) and check that they share one tokenizer.

        Raises:
            ConfigError: a model cannot be loaded, or the tokenizers differ.
        """
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._load_all)

    def chat_prompt(self, messages: Request | Sequence[ChatMessage]) -> str:
        """The exact prompt text the models read for these messages (first model's rendering)."""
        return str(self.models[0].chat_prompt(messages))

    def close(self) -> None:
        """Forget the request queues (the models stay loaded; close them separately)."""
        self._batchers = weakref.WeakKeyDictionary()

    def _decode(self, batch: Batch) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _rows_of(
        self, loaded: list[Loaded], items: list[Pending]
    ) -> tuple[list[Row], list[Outcome]]:
        torch = require("torch", extra="hf")
        primary = loaded[0]
        outcomes: list[Outcome] = [None] * len(items)
        rows: list[Row] = []
        contexts = [c for c in (one.context for one in loaded) if c is not None]
        context = min(contexts) if contexts else None
        for index, item in enumerate(items):
            if item.is_cancelled():
                continue
            try:
                ids = primary.encode(render_prompt(primary, chat_messages(item.request), self.name))
                for one in loaded:
                    check_length(self.name, one, len(ids) + 1)
                if not ids:
                    raise ConfigError("the prompt is empty; give the models some text to read.")
            except Exception as exc:
                outcomes[index] = model_error(self.name, exc, "preparing the prompt")
                continue
            limit = item.max_new if context is None else min(item.max_new, context - len(ids))
            for j in range(item.rows):
                sampling = item.sampling
                generator = None
                if sampling.do_sample:
                    generator = torch.Generator()
                    if sampling.seed is None:
                        generator.seed()
                    else:
                        generator.manual_seed(row_seed(sampling.seed, j))
                rows.append(Row(item, ids, sampling, generator, limit, len(loaded)))
        return rows, outcomes

    def _run_batch(self, items: list[Pending]) -> list[Outcome]:
        """Run one batch to its end (coordinating thread). Errors stay per request."""
        try:
            loaded = self._load_all()
        except AccordError as exc:
            return [exc] * len(items)
        except Exception as exc:
            return [model_error(self.name, exc, "loading")] * len(items)
        rows, outcomes = self._rows_of(loaded, items)
        if not rows:
            return outcomes
        batch = Batch(self, loaded, rows)
        self.batches += 1
        self.requests += len({id(row.item) for row in rows})
        try:
            self._decode(batch)
        except Exception as exc:
            error = model_error(self.name, exc, "decoding")
            owners = {id(row.item) for row in rows}
            return [
                error if id(item) in owners else o for item, o in zip(items, outcomes, strict=True)
            ]
        for index, item in enumerate(items):
            mine = [row for row in rows if row.item is item]
            if not mine or all(row.cancelled for row in mine):
                continue
            outcomes[index] = self._completion(item, mine)
        return outcomes

    def _completion(self, item: Pending, rows: list[Row]) -> Completion:
        prompt = len(rows[0].prompt)
        decode = self.models[0]._ensure_loaded().decode
        for row in rows:
            if not row.cut:
                row.text = decode(row.tokens)
        choices = tuple(Choice(text=row.text, finish_reason=row.finish) for row in rows)
        if item.rows < item.request.n:  # greedy: n identical candidates, generated once
            choices = choices * item.request.n
        by_model = []
        for i, model in enumerate(self.models):
            ran = sum(row.fed[i] for row in rows)
            by_model.append(
                (
                    model.name,
                    Usage(
                        requests=1,
                        prompt_tokens=prompt,
                        completion_tokens=max(ran - prompt * len(rows), 0),
                    ),
                )
            )
        usage = Usage(
            requests=1,
            prompt_tokens=prompt,
            completion_tokens=sum(row.counted for row in rows),
            by_model=tuple(by_model),
        )
        return Completion(choices=choices, usage=usage, model=self.name)
