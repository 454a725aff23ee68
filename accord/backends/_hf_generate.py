"""One left-padded ``generate()`` call for a batch of rows, with per-row limits and stop strings.

Runs in the backend's worker thread (blocking). Every row has its own prompt, its own
``max_tokens`` and its own stop strings: a per-row stopping criterion ends a row when it reaches
its limit, writes a stop string, or its caller went away, so rows with different limits share one
call. Rows that stream get their text through :class:`RowStreamer` as it is generated, holding
back any tail that could still become a stop string. Greedy rows give the same tokens batched as
alone (left padding and an attention mask; no shared state between rows).

Caveat: the final text is always recomputed from the tokens (decode, then cut at the first stop
string), so a stop string that the in-loop check missed still ends the text; it only costs the
tokens generated past it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from accord._lazy import require
from accord.backends._hf_load import Loaded
from accord.backends._hf_sample import RowSampler
from accord.backends.base import TokenLogprob

__all__ = ["Sampling", "RowSpec", "RowResult", "StreamSink", "generate_rows", "first_stop"]


@dataclass(frozen=True)
class Sampling:
    """Decoding settings shared by every row of one ``generate()`` call."""

    do_sample: bool
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass(eq=False)
class StreamSink:
    """Where a streaming row's text goes. ``push`` must be thread-safe."""

    push: Callable[[str], None]
    emitted: str = ""
    """Text pushed so far (always a prefix of the final text)."""


@dataclass(eq=False)
class RowSpec:
    """One sequence to generate."""

    prompt: list[int]
    max_new: int
    stops: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    cancelled: Callable[[], bool] = lambda: False
    sink: StreamSink | None = None
    sampling: Sampling | None = None
    """This row's own settings when rows sample with their own generators (seeded rows)."""
    window: int = field(init=False)

    def __post_init__(self) -> None:
        # A stop string of L characters spans at most 4 L byte-level tokens.
        self.window = 4 * max((len(s) for s in self.stops), default=0) + 8


@dataclass(frozen=True)
class RowResult:
    """What one row produced."""

    text: str
    finish_reason: str
    tokens: int
    """Tokens generated, the one that ended the row (EOS or the end of a stop string) included."""
    logprobs: tuple[TokenLogprob, ...] | None = None


def first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    """Index of the earliest occurrence of any stop string in ``text``, or None."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters to keep back: a possible stop-string start, or a partial
    UTF-8 character (decoded as U+FFFD)."""
    keep = len(text) - len(text.rstrip("\ufffd"))
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                keep = max(keep, size)
                break
    return keep


class RowStopper:
    """A stopping criterion with one verdict per row (limit, stop string, cancelled)."""

    def __init__(self, rows: list[RowSpec], width: int, loaded: Loaded) -> None:
        self.rows = rows
        self.width = width
        self.loaded = loaded
        self.stopped_at: list[int | None] = [None] * len(rows)
        self._torch = require("torch", extra="hf")

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        length = int(input_ids.shape[1])
        generated = length - self.width
        verdict: list[bool] = []
        for index, row in enumerate(self.rows):
            if self.stopped_at[index] is not None:
                verdict.append(True)
                continue
            stop = generated >= row.max_new or row.cancelled()
            if not stop and row.stops:
                start = max(self.width, length - row.window)
                tail = self.loaded.decode(input_ids[index, start:].tolist())
                stop = first_stop(tail, row.stops) is not None
            if stop:
                self.stopped_at[index] = generated
            verdict.append(stop)
        return self._torch.tensor(verdict, dtype=self._torch.bool, device=input_ids.device)


class RowStreamer:
    """A ``generate()`` streamer that hands each streaming row its new text as it comes."""

    def __init__(self, rows: list[RowSpec], loaded: Loaded) -> None:
        self.rows = rows
        self.loaded = loaded
        self.ids: list[list[int]] = [[] for _ in rows]
        self.done = [row.sink is None for row in rows]
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt ids
            self._prompt_seen = True
            return
        tokens = value.reshape(-1).tolist()
        for index, row in enumerate(self.rows):
            if not self.done[index]:
                self._feed(index, row, int(tokens[index]))

    def _feed(self, index: int, row: RowSpec, token: int) -> None:
        sink = row.sink
        assert sink is not None
        if token in self.loaded.eos_ids or row.cancelled():
            self.done[index] = True
            return
        ids = self.ids[index]
        ids.append(token)
        text = self.loaded.decode(ids)
        cut = first_stop(text, row.stops)
        if cut is not None or len(ids) >= row.max_new:
            self.done[index] = True
            safe = len(text) if cut is None else cut
        else:
            safe = len(text) - _held_back(text, row.stops)
        if safe > len(sink.emitted) and text.startswith(sink.emitted):
            piece = text[len(sink.emitted) : safe]
            sink.emitted += piece
            sink.push(piece)

    def end(self) -> None:
        """Called by ``generate()`` at the end; the final text is delivered with the result."""


def _generation_config(loaded: Loaded, sampling: Sampling, max_new: int, logits: bool) -> Any:
    import copy

    config = copy.deepcopy(loaded.model.generation_config)
    config.max_new_tokens = max_new
    config.max_length = None
    config.num_beams = 1
    config.num_return_sequences = 1
    config.do_sample = sampling.do_sample
    if sampling.do_sample:
        config.temperature = sampling.temperature
        config.top_p = sampling.top_p
    else:
        config.temperature = config.top_p = config.top_k = None
        config.min_p = config.typical_p = None
    config.eos_token_id = list(loaded.eos_ids) or None
    config.pad_token_id = loaded.pad_id
    config.return_dict_in_generate = True
    config.output_logits = logits
    config.output_scores = False
    return config


def generate_rows(
    loaded: Loaded,
    rows: list[RowSpec],
    sampling: Sampling,
    extra: dict[str, Any] | None = None,
) -> list[RowResult]:
    """Generate every row in one left-padded ``generate()`` call (blocking).

    Args:
        loaded: the model.
        rows: the sequences; their prompts may differ in length.
        sampling: settings shared by all rows.
        extra: more ``generate()`` keyword arguments (override the ones built here).

    Returns:
        One result per row, in order.

    A seeded ``sampling`` makes every row sample with its own generator (``row.sampling``, the
    row's seed, temperature and top-p; ``sampling`` itself for rows without one).
    """
    torch = require("torch", extra="hf")
    width = max(len(row.prompt) for row in rows)
    input_ids = torch.full((len(rows), width), loaded.pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        if row.prompt:
            input_ids[index, width - len(row.prompt) :] = torch.tensor(row.prompt)
            attention[index, width - len(row.prompt) :] = 1
    want_logits = any(row.logprobs for row in rows)
    stopper = RowStopper(rows, width, loaded)
    streamer = RowStreamer(rows, loaded) if any(row.sink for row in rows) else None
    config = _generation_config(loaded, sampling, max(row.max_new for row in rows), want_logits)
    transformers = require("transformers", extra="hf")
    kwargs: dict[str, Any] = {
        "input_ids": input_ids.to(loaded.device),
        "attention_mask": attention.to(loaded.device),
        "stopping_criteria": transformers.StoppingCriteriaList([stopper]),
        "streamer": streamer,
    }
    for key, value in (extra or {}).items():  # generation settings go into the config
        if hasattr(config, key):
            setattr(config, key, value)
        else:
            kwargs[key] = value
    if sampling.do_sample and sampling.seed is not None:  # one generator per row
        top_k = (extra or {}).get("top_k", getattr(loaded.model.generation_config, "top_k", None))
        config.do_sample = False
        config.temperature = config.top_p = config.top_k = None
        config.min_p = config.typical_p = None
        own = [row.sampling or sampling for row in rows]
        sampler = RowSampler(
            [s.seed if s.seed is not None else 0 for s in own],
            [s.temperature for s in own],
            [s.top_p for s in own],
            top_k,
        )
        kwargs["logits_processor"] = transformers.LogitsProcessorList([sampler])
    kwargs["generation_config"] = config
    with torch.inference_mode():
        out = loaded.model.generate(**kwargs)
    generated = out.sequences[:, width:].tolist()
    return [
        _finish(
            loaded,
            row,
            generated[i],
            stopper.stopped_at[i],
            out.logits if row.logprobs else None,
            i,
        )
        for i, row in enumerate(rows)
    ]


def _finish(
    loaded: Loaded,
    row: RowSpec,
    tokens: list[int],
    stopped_at: int | None,
    logits: Any,
    index: int,
) -> RowResult:
    limit = len(tokens) if stopped_at is None else min(len(tokens), stopped_at)
    eos_at = next((i for i, t in enumerate(tokens[:limit]) if t in loaded.eos_ids), None)
    if eos_at is not None:
        content, counted, reason = tokens[:eos_at], eos_at + 1, "stop"
    else:
        content, counted, reason = tokens[:limit], limit, "length"
    text = loaded.decode(content)
    cut = first_stop(text, row.stops)
    if cut is not None:
        text, reason = text[:cut], "stop"
    logprobs = None
    if logits is not None:
        logprobs = _token_logprobs(loaded, row, content, text, cut is not None, logits, index)
    return RowResult(text=text, finish_reason=reason, tokens=counted, logprobs=logprobs)


def _token_logprobs(
    loaded: Loaded,
    row: RowSpec,
    content: list[int],
    text: str,
    was_cut: bool,
    logits: Any,
    index: int,
) -> tuple[TokenLogprob, ...]:
    torch = require("torch", extra="hf")
    keep = len(content)
    if was_cut:  # keep the tokens that start before the cut
        keep = next(
            (i for i in range(len(content)) if len(loaded.decode(content[:i])) >= len(text)),
            len(content),
        )
    result: list[TokenLogprob] = []
    for step, token in enumerate(content[:keep]):
        lp = torch.log_softmax(logits[step][index].float(), dim=-1)
        top: tuple[tuple[str, float], ...] = ()
        if row.top_logprobs:
            values, ids = lp.topk(min(row.top_logprobs, lp.shape[-1]))
            top = tuple(
                (loaded.decode([int(i)]), _finite(float(v)))
                for v, i in zip(values.tolist(), ids.tolist(), strict=True)
            )
        result.append(
            TokenLogprob(token=loaded.decode([token]), logprob=_finite(float(lp[token])), top=top)
        )
    return tuple(result)


def _finite(value: float) -> float:
    """-inf becomes the most negative float, so the value survives JSON."""
    return value if math.isfinite(value) else -1e30 if value < 0 else 1e30
