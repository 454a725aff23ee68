"""From queued requests to completions: the blocking half of :class:`HFBackend`'s batching.

:func:`sampling_of` checks a request's options (on the event loop, so a bad option fails at
once); :func:`run_batch` renders and tokenizes each request of a batch, turns them into rows
(``n`` rows for a sampled request, one for a greedy one), runs one ``generate()`` and builds a
:class:`Completion` per request, in the worker thread. Caveat: errors stay per request (one bad
prompt does not fail its neighbours) and leave as accord errors: torch or transformers failures
become :class:`~accord.errors.ProviderError`, a prompt longer than the model's context a
:class:`~accord.errors.ProviderRequestError`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from accord.backends._hf_batch import HFStats, Outcome, Pending
from accord.backends._hf_generate import RowSpec, Sampling, generate_rows
from accord.backends._hf_load import Loaded
from accord.backends._hf_sample import row_seed
from accord.backends._hf_tools import read_tool_calls, request_prompt
from accord.backends.base import Choice, Completion, Request
from accord.errors import AccordError, ConfigError, ProviderError, ProviderRequestError
from accord.messages import Usage

__all__ = ["sampling_of", "model_error", "check_length", "run_batch"]


def sampling_of(request: Request) -> Sampling:
    """The decoding settings of a request: greedy when temperature is None or 0.

    Raises:
        ConfigError: an option out of range (n, max_tokens, top_logprobs, temperature, top_p).
    """
    if request.n < 1:
        raise ConfigError(f"n must be at least 1, got {request.n}.")
    if request.max_tokens is not None and request.max_tokens < 1:
        raise ConfigError(f"max_tokens must be at least 1, got {request.max_tokens}.")
    if request.top_logprobs is not None and request.top_logprobs < 0:
        raise ConfigError(f"top_logprobs must not be negative, got {request.top_logprobs}.")
    temperature = request.temperature or 0.0
    if temperature < 0:
        raise ConfigError(f"temperature must not be negative, got {request.temperature}.")
    top_p = 1.0 if request.top_p is None else request.top_p
    if not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {request.top_p}.")
    if temperature == 0:
        return Sampling(do_sample=False)
    return Sampling(do_sample=True, temperature=temperature, top_p=top_p, seed=request.seed)


def model_error(model: str, exc: Exception, doing: str) -> AccordError:
    """accord's error for an exception raised while using the model (accord errors pass)."""
    if isinstance(exc, AccordError):
        return exc
    error = ProviderError(
        f"local model {model!r} failed while {doing}: {type(exc).__name__}: {exc}",
        provider="hf",
    )
    error.__cause__ = exc
    return error


def check_length(model: str, loaded: Loaded, tokens: int) -> None:
    """Raise when ``tokens`` do not fit the model's context.

    Raises:
        ProviderRequestError: the prompt is longer than the context.
    """
    if loaded.context is not None and tokens > loaded.context:
        raise ProviderRequestError(
            f"the prompt has {tokens} tokens, but model {model!r} reads at most "
            f"{loaded.context}. Shorten the conversation.",
            provider="hf",
        )


def run_batch(
    loaded: Loaded,
    items: list[Pending],
    *,
    model: str,
    generate_kwargs: dict[str, Any],
    stats: HFStats,
) -> list[Outcome]:
    """Render, tokenize and generate a batch of compatible requests (blocking).

    Returns:
        Per request: its completion, its error, or None when it was cancelled before the batch.
    """
    outcomes: list[Outcome] = [None] * len(items)
    prompts: dict[int, list[int]] = {}
    for index, item in enumerate(items):
        if item.is_cancelled():
            continue
        try:
            ids = loaded.encode(request_prompt(loaded, item.request, model))
            check_length(model, loaded, len(ids) + 1)
            prompts[index] = ids
        except Exception as exc:
            outcomes[index] = model_error(model, exc, "preparing the prompt")
    rows: list[RowSpec] = []
    owners: list[int] = []
    for index, ids in prompts.items():
        item = items[index]
        room = item.max_new
        if loaded.context is not None:  # stop at the end of the context ("length")
            room = min(room, loaded.context - len(ids))
        for row_index in range(item.rows):
            own = item.sampling
            if own.seed is not None:
                own = replace(own, seed=row_seed(own.seed, row_index))
            rows.append(
                RowSpec(
                    prompt=ids,
                    max_new=room,
                    stops=item.stops,
                    logprobs=item.request.logprobs,
                    top_logprobs=item.request.top_logprobs or 0,
                    cancelled=item.is_cancelled,
                    sink=item.sink,
                    sampling=own,
                )
            )
            owners.append(index)
    if not rows:
        return outcomes
    try:
        results = generate_rows(loaded, rows, items[owners[0]].sampling, generate_kwargs)
    except Exception as exc:
        error = model_error(model, exc, "generating")
        for index in prompts:
            outcomes[index] = error
        return outcomes
    stats.batches += 1
    stats.rows += len(rows)
    stats.max_rows = max(stats.max_rows, len(rows))
    for index, ids in prompts.items():
        item = items[index]
        mine = [r for r, owner in zip(results, owners, strict=True) if owner == index]
        generated = sum(r.tokens for r in mine)  # tokens really generated
        if item.rows < item.request.n:  # greedy: n identical candidates, generated once
            mine = mine * item.request.n
        choices = tuple(
            Choice(text=r.text, finish_reason=r.finish_reason, logprobs=r.logprobs) for r in mine
        )
        usage = Usage(requests=1, prompt_tokens=len(ids), completion_tokens=generated)
        stats.requests += 1
        stats.prompt_tokens += usage.prompt_tokens
        stats.completion_tokens += generated
        outcomes[index] = read_tool_calls(
            Completion(choices=choices, usage=usage, model=model), item.request
        )
    return outcomes
