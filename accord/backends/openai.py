"""``OpenAIBackend``: any OpenAI-compatible chat-completions server through the official SDK.

OpenAI itself, vLLM, llama.cpp, Ollama, TGI, LiteLLM: one backend, addressed as
``"openai:MODEL"``. The SDK (``AsyncOpenAI``) is imported when the first backend is built, never
by ``import accord``, and is built with ``max_retries=0``: accord's :class:`~accord.backends._retry.
Retrier` is the only retry layer. Every SDK exception becomes an accord error in one place
(``_openai_errors``); a 200 with HTML, broken JSON, no choices or a null message is an error too,
and so is output cut at the token limit (``on_truncation="error"``, the default).

A local server (loopback or private ``base_url``) is treated as the single machine it is: at
most as many requests in flight as it has slots (asked with ``GET /props``/``/slots`` where the
server answers, else :data:`LOCAL_DEFAULT_CONCURRENCY`), waiting for that place is neither an
attempt nor part of the deadline, and a timed-out generation is not re-sent to a server that may
still be working on it (``retry_timeouts``). Structured output is sent the way the server takes
it: ``structured="auto"`` tries ``json_schema``, then ``json_object`` with the schema inside
(llama.cpp's grammar), then JSON mode, then instructions, remembering what the server refused.

Example::

    backend = OpenAIBackend("gpt-4o-mini", max_concurrency=8, prices={"gpt-4o-mini": (0.15, 0.6)})
    local = OpenAIBackend("tiny", base_url="http://127.0.0.1:8080/v1")

Caveat: one instance is the unit of sharing: its concurrency limit, rate limit and 429
cool-down apply to every agent that uses that instance, not to other instances; except that
backends of one local server left at the default concurrency share one limit (its slots).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from accord._log import get_logger
from accord.backends._guard import check_real_call_allowed
from accord.backends._limits import Limiter, Slot
from accord.backends._openai_convert import (
    STRUCTURED_MODES,
    ParsedCompletion,
    StructuredMode,
    StructuredOutput,
    build_params,
    estimate_tokens,
    parse_completion,
    read_chunk,
    schema_instructions,
)
from accord.backends._openai_errors import classify, excerpt, translate_errors
from accord.backends._openai_local import (
    LOCAL_DEFAULT_CONCURRENCY,
    check_base_url,
    is_local,
    mode_unsupported,
    probe_slots,
)
from accord.backends._pricing import Price, PriceTable, cost_of, normalize_prices
from accord.backends._retry import Attempt, Outcome, Retrier, RetryHint, RetryInfo, RetryPolicy
from accord.backends._tool_calls import apply_tools, prompted_choice
from accord.backends.base import Capabilities, Choice, Completion, Delta, Request
from accord.errors import (
    ConfigError,
    InvalidProviderResponseError,
    MissingDependencyError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RefusalError,
    StreamInterruptedError,
    TruncatedOutputError,
)
from accord.messages import Usage

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = [
    "OpenAIBackend",
    "RetryPolicy",
    "RetryInfo",
    "Price",
    "LOCAL_DEFAULT_CONCURRENCY",
    "LOCAL_DEADLINE",
    "LOCAL_TIMEOUT",
]

log = get_logger(__name__)

_T = TypeVar("_T")

_LOCAL_LIMITERS: weakref.WeakValueDictionary[str, Limiter] = weakref.WeakValueDictionary()
"""One limiter per local server URL for backends left at the default concurrency."""

_OFFICIAL_HOST = "api.openai.com"

LOCAL_TIMEOUT = 300.0
"""Default silence timeout (seconds) of a local server: reading a long prompt on a busy CPU
(8 tokens a second on 2 shared cores) says nothing until the first token."""
LOCAL_DEADLINE = 900.0
"""Default total deadline (seconds) of one call to a local server."""
_NO_KEY = "no-key"


@dataclass
class _OpenStream:
    stream: Any
    iterator: AsyncIterator[Any]
    first: Any
    slot: Slot
    whole: ParsedCompletion | None = None
    """The answer of a server that ignored ``stream: true`` and sent one JSON completion."""


class _EmptyStream(InvalidProviderResponseError):
    """A 200 event stream without a single chunk (llama-cpp-python's answer to some errors)."""


class _ModeRefused(Exception):
    """Internal: the server refused the structured-output mode ``mode`` (``error`` says how)."""

    def __init__(self, mode: StructuredOutput, error: ProviderError) -> None:
        super().__init__(str(error))
        self.mode = mode
        self.error = error


class OpenAIBackend:
    """A model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Args:
        model: the model name sent to the server.
        base_url: the server's ``.../v1`` URL; default ``OPENAI_BASE_URL`` or OpenAI itself.
        api_key: the key; default ``OPENAI_API_KEY``. Optional for servers other than OpenAI.
        timeout: seconds of silence an attempt may take: until the answer (or a stream's first
            chunk), then between chunks (shorthand for ``retry.timeout``).
        retry: attempts, timeout, total deadline and waits (:class:`RetryPolicy`). A local
            server's defaults are a :data:`LOCAL_TIMEOUT` of 300 s (a CPU reads a long prompt
            silently) and a :data:`LOCAL_DEADLINE` of 900 s (it generates slowly but steadily).
        max_concurrency: most requests in flight at once across all callers of this instance.
            Default: no limit for a hosted API; for a local server (loopback or private address)
            its slot count from ``GET /props`` or ``/slots``, else
            :data:`LOCAL_DEFAULT_CONCURRENCY` (1).
        requests_per_second: average request rate across all callers (a token bucket).
        burst: requests that may start at once before the rate applies.
        structured: how a ``response_schema`` is sent: ``"json_schema"`` (the schema as
            ``response_format``: OpenAI, vLLM, llama-server, Ollama, LM Studio),
            ``"json_object+schema"`` (``{"type": "json_object", "schema": ...}``: llama-cpp-python
            and llama-server constrain output with a grammar), ``"json_object"`` (JSON mode plus
            the schema as an instruction), ``"instructions"`` (only the instruction), or
            ``"auto"`` (the default: try them in that order and, when the server answers a mode
            with a 4xx/500 about the format, fall back to the next one and remember it).
        structured_output: the former name of ``structured`` (still accepted).
        local: treat the server as local (one machine with a few slots): default True for a
            loopback, private or link-local ``base_url`` or ``localhost``. A local server gets
            slot-based ``max_concurrency``, ``retry_timeouts=False``, and ``complete`` streamed
            under the hood so that the timeout measures silence, not generation time.
        retry_timeouts: re-send a request whose answer timed out. Default: True for a hosted
            API, False for a local server, where the timed-out generation is most likely still
            running and a re-sent copy would queue behind it (a connect timeout is always retried).
        on_truncation: ``"error"`` raises ``TruncatedOutputError`` when the output stopped at
            the token limit or without a finish reason; ``"return"`` returns it with its
            ``finish_reason`` ("length" or None) for the caller to inspect.
        native_n: the server honours ``n``; default True for OpenAI, False elsewhere (then
            ``n`` candidates are ``n`` concurrent requests).
        stream_usage: ask for a usage chunk when streaming (``stream_options.include_usage``).
        max_tokens_param: ``"max_tokens"`` or ``"max_completion_tokens"`` (OpenAI's newer models).
        prices: ``{model: (input $/M tokens, output $/M tokens)}`` or ``{model: Price(...)}``.
        on_retry: called with a :class:`RetryInfo` before each retry wait.
        default_headers: extra HTTP headers for every request.
        sleep: the sleep used for retry waits and cool-downs (tests inject a fake).
        clock: a monotonic clock in seconds (tests inject a fake).
        tool_calling: how tools are sent: ``"native"`` (OpenAI's ``tools``/``tool_calls``) or
            ``"prompt"`` (described in the system prompt, calls read from ``<tool_call>`` JSON
            in the reply; for servers without tool calling). See ``_tool_calls``.

    Raises:
        ConfigError: no API key for OpenAI, or an invalid option.
        MissingDependencyError: the openai SDK is not installed.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        max_concurrency: int | None = None,
        requests_per_second: float | None = None,
        burst: int | None = None,
        structured: StructuredMode | None = None,
        structured_output: StructuredMode | None = None,
        retry_timeouts: bool | None = None,
        local: bool | None = None,
        on_truncation: Literal["error", "return"] = "error",
        native_n: bool | None = None,
        stream_usage: bool = True,
        max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
        prices: PriceTable | None = None,
        on_retry: Callable[[RetryInfo], None] | None = None,
        default_headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] | None = None,
        tool_calling: Literal["native", "prompt"] = "native",
    ) -> None:
        _import_openai()
        if not model:
            raise ConfigError(
                "OpenAIBackend needs a model name, e.g. OpenAIBackend('gpt-4o-mini')."
            )
        if (
            structured is not None
            and structured_output is not None
            and structured != (structured_output)
        ):
            raise ConfigError(
                f"structured={structured!r} and structured_output={structured_output!r} disagree; "
                "pass only structured=..."
            )
        mode = structured or structured_output or "auto"
        if mode != "auto" and mode not in STRUCTURED_MODES:
            raise ConfigError(
                "structured must be 'auto', "
                + ", ".join(repr(m) for m in STRUCTURED_MODES)
                + f"; got {mode!r}."
            )
        if tool_calling not in ("native", "prompt"):
            raise ConfigError(f"tool_calling must be 'native' or 'prompt', got {tool_calling!r}.")
        self.tool_calling = tool_calling
        if on_truncation not in ("error", "return"):
            raise ConfigError(f"on_truncation must be 'error' or 'return', got {on_truncation!r}.")
        self.model = model
        self.name = f"openai:{model}"
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        if self.base_url is not None:
            check_base_url(self.base_url)
        self.local = is_local(self.base_url) if local is None else local
        official = self.base_url is None or urlsplit(self.base_url).hostname == _OFFICIAL_HOST
        key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if key is None and official:
            raise ConfigError(
                f"no API key for {self.name}: pass api_key=... or set OPENAI_API_KEY. For another "
                "OpenAI-compatible server pass base_url='http://host:port/v1'."
            )
        self._api_key = SecretStr(key or _NO_KEY)
        self._has_key = key is not None
        self.policy = retry or (
            RetryPolicy(timeout=LOCAL_TIMEOUT, deadline=LOCAL_DEADLINE)
            if self.local
            else RetryPolicy()
        )
        if timeout is not None:
            self.policy = self.policy.model_copy(update={"timeout": float(timeout)})
        self.structured: StructuredMode = mode
        """The configured mode (``"auto"`` or a fixed one)."""
        self._modes: tuple[StructuredOutput, ...] = STRUCTURED_MODES if mode == "auto" else (mode,)
        self.retry_timeouts = (not self.local) if retry_timeouts is None else retry_timeouts
        self.on_truncation = on_truncation
        self.native_n = official if native_n is None else native_n
        self.stream_usage = stream_usage
        self.max_tokens_param = max_tokens_param
        self.prices: dict[str, Price] = normalize_prices(prices)
        self._default_headers = dict(default_headers or {})
        self.capabilities = Capabilities(
            streaming=True,
            structured_output=self._modes[0] in ("json_schema", "json_object+schema"),
            n=self.native_n,
            logprobs=True,
            logits=False,
        )
        self._slots_known = max_concurrency is not None or not self.local
        shared = (
            not self._slots_known
            and requests_per_second is None
            and sleep is None
            and clock is None
        )
        found = _LOCAL_LIMITERS.get(self.base_url or "") if shared else None
        self.limiter = found or Limiter(
            provider=self.name,
            max_concurrency=max_concurrency,
            requests_per_second=requests_per_second,
            burst=burst,
            sleep=sleep,
            clock=clock,
        )
        if shared:  # a local server's slots are one resource, whichever instance asks
            _LOCAL_LIMITERS[self.base_url or ""] = self.limiter
        self._on_retry = on_retry
        self._retrier = Retrier(
            provider=self.name,
            policy=self.policy,
            classify=self._classify,
            sleep=sleep,
            clock=clock,
            on_retry=self._report_retry,
            on_rate_limited=self.limiter.cool_down,
        )
        self._clients: dict[asyncio.AbstractEventLoop, AsyncOpenAI] = {}
        self._warned_usage = False
        self._probes: dict[asyncio.AbstractEventLoop, asyncio.Future[None]] = {}

    @property
    def structured_output(self) -> StructuredOutput:
        """The structured-output mode the next request uses (``"auto"`` may still fall back)."""
        return self._modes[0]

    # ------------------------------------------------------------------ identity

    def __repr__(self) -> str:
        url = _redact_url(self.base_url) if self.base_url else None
        return f"OpenAIBackend(model={self.model!r}, base_url={url!r}, api_key='***')"

    __str__ = __repr__

    @property
    def _secrets(self) -> tuple[str, ...]:
        """What error messages must never show."""
        key = (self._api_key.get_secret_value(),) if self._has_key else ()
        return key + tuple(
            value
            for name, value in self._default_headers.items()
            if any(word in name.lower() for word in ("key", "auth", "token", "secret"))
        )

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Close the HTTP connections this backend opened on the running loop."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    async def __aenter__(self) -> OpenAIBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _client(self) -> AsyncOpenAI:
        """The SDK client of the running loop (a pooled client cannot move between loops)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for old in [lp for lp in self._clients if lp.is_closed()]:
                del self._clients[old]
            openai = _import_openai()
            client = openai.AsyncOpenAI(
                api_key=self._api_key.get_secret_value(),
                base_url=self.base_url,
                max_retries=0,
                timeout=self.policy.timeout,
                default_headers=self._default_headers or None,
                # Our own pool: the SDK's default one closes itself on whatever loop is running
                # when it is collected, which fails (and logs) for a client of a closed loop.
                http_client=openai.DefaultAsyncHttpxClient(timeout=self.policy.timeout),
            )
            self._clients[loop] = client
        return client

    # ------------------------------------------------------------------ complete

    async def complete(self, request: Request) -> Completion:
        """Answer ``request`` in one piece.

        On a local server a one-candidate request without log-probabilities is streamed under
        the hood, so that the timeout measures silence rather than the whole generation.

        Raises:
            ProviderError: a subclass saying what failed (see ``accord.errors``); a stopped-early
                output raises ``TruncatedOutputError`` unless ``on_truncation="return"``.
        """
        check_real_call_allowed(self.name)
        if request.n > 1 and not self.native_n:
            return await self._complete_n(request)
        if self.local and request.n == 1 and not request.logprobs and not request.tools:
            try:
                return await self._complete_streamed(request)
            except _EmptyStream:
                pass  # ask again without streaming: the server then says what is wrong
        started = time.perf_counter()
        await self._ensure_slots()
        outcome, wasted = await self._with_modes(
            request,
            lambda params, mode: self._retrier.call(
                lambda attempt: _refused_as(mode, self._complete_once(attempt, params))
            ),
        )
        parsed = outcome.value
        if request.tools and self.tool_calling == "prompt":
            parsed = replace(
                parsed, choices=tuple(prompted_choice(c, request) for c in parsed.choices)
            )
        if len(parsed.choices) < request.n:
            raise InvalidProviderResponseError(
                f"{self.name} returned {len(parsed.choices)} choice(s) for n={request.n}: the "
                "server ignores n. Build the backend with native_n=False.",
                provider=self.name,
                status_code=200,
                attempts=outcome.attempts,
            )
        self._check_truncation(parsed.choices, outcome.attempts)
        text = "".join(c.text for c in parsed.choices)
        usage = self._usage(
            request,
            text,
            parsed.prompt_tokens,
            parsed.completion_tokens,
            parsed.model,
            outcome.requests + wasted,
        )
        return Completion(
            choices=parsed.choices,
            usage=usage,
            model=parsed.model or self.model,
            latency_s=time.perf_counter() - started,
        )

    async def _complete_streamed(self, request: Request) -> Completion:
        started = time.perf_counter()
        parts: list[str] = []
        finish: str | None = None
        usage = Usage(requests=1)
        async with contextlib.aclosing(self.stream(request)) as deltas:  # type: ignore[type-var]
            async for delta in deltas:
                parts.append(delta.text)
                if delta.finish_reason is not None:
                    finish = delta.finish_reason
                if delta.usage is not None:
                    usage = delta.usage
        return Completion(
            choices=(Choice(text="".join(parts), finish_reason=finish),),
            usage=usage,
            model=self.model,
            latency_s=time.perf_counter() - started,
        )

    def _with_tools(
        self, params: dict[str, Any], request: Request, mode: StructuredOutput
    ) -> dict[str, Any]:
        """``params`` with the request's tools, natively or prompted (see ``apply_tools``)."""
        schema = request.response_schema
        # Prompted tool calling rebuilds the messages: keep the schema instruction that the
        # modes without a server-side schema rely on.
        note = (
            schema_instructions(schema)
            if schema is not None and mode in ("json_object", "instructions")
            else None
        )
        return apply_tools(
            params, request, self.tool_calling, note, json_schema_format=mode == "json_schema"
        )

    async def _complete_once(self, attempt: Attempt, params: dict[str, Any]) -> ParsedCompletion:
        slot = await self._acquire(attempt)
        try:
            async with attempt.timed() as timeout:
                with translate_errors(self.name, self._secrets):
                    attempt.sent()
                    raw = await self._client().chat.completions.with_raw_response.create(
                        **params, timeout=timeout
                    )
                    content_type = raw.headers.get("content-type", "")
                    body = raw.content
        finally:
            slot.release()
        return parse_completion(content_type, body, provider=self.name, secrets=self._secrets)

    async def _complete_n(self, request: Request) -> Completion:
        """``n`` candidates from a server that ignores ``n``: ``n`` concurrent requests."""
        single = request.model_copy(update={"n": 1})
        tasks = [asyncio.ensure_future(self.complete(single)) for _ in range(request.n)]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        usage = Usage()
        for part in parts:
            usage = usage + part.usage
        return Completion(
            choices=tuple(p.choices[0] for p in parts),
            usage=usage,
            model=parts[0].model,
            latency_s=max(p.latency_s for p in parts),
        )

    # ------------------------------------------------------------------ stream

    async def stream(self, request: Request) -> AsyncIterator[Delta]:
        """Answer ``request`` chunk by chunk.

        Yields text deltas, then one last delta with ``finish_reason`` and ``usage`` (from the
        server's usage chunk, else estimated and marked ``usage.estimated``). Retries happen only
        until the first chunk arrives; the total deadline holds for the whole stream.
        Log-probabilities are not streamed: use :meth:`complete` for them.

        Raises:
            StreamInterruptedError: the stream broke after it started, sent a malformed chunk, or
                ran past the deadline (``partial_text`` kept).
            TruncatedOutputError: it ended at the token limit or without a finish reason
                (unless ``on_truncation="return"``).
            ProviderError: any other failure, as for :meth:`complete`.
        """
        check_real_call_allowed(self.name)
        if request.n != 1:
            raise ConfigError(
                f"{self.name}: streaming returns one candidate; got n={request.n}. Use complete() "
                "for several candidates."
            )
        await self._ensure_slots()
        outcome, wasted = await self._with_modes(
            request,
            lambda params, mode: self._retrier.call(
                lambda attempt: _refused_as(mode, self._open_stream(attempt, params))
            ),
            stream=True,
        )
        opened = outcome.value
        parts: list[str] = []
        chunks = 0
        finish: str | None = None
        prompt_tokens: int | None = None
        completion_tokens: int | None = None
        if opened.whole is not None:  # the server ignored stream: true; one piece is fine too
            opened.slot.release()
            choice = opened.whole.choices[0]
            parts.append(choice.text)
            finish = choice.finish_reason
            prompt_tokens = opened.whole.prompt_tokens
            completion_tokens = opened.whole.completion_tokens
            if choice.text:
                yield Delta(text=choice.text)
        try:
            chunk = opened.first
            while chunk is not None:
                data = read_chunk(chunk)
                chunks += 1
                if data.refusal:
                    raise RefusalError(
                        f"{self.name}: the model refused: {data.refusal[:300]}",
                        provider=self.name,
                        status_code=200,
                        refusal=data.refusal,
                        attempts=outcome.attempts,
                    )
                if data.finish_reason is not None:
                    finish = data.finish_reason
                if data.prompt_tokens is not None:
                    prompt_tokens, completion_tokens = data.prompt_tokens, data.completion_tokens
                if data.text:
                    parts.append(data.text)
                    yield Delta(text=data.text)
                chunk = await self._next_chunk(opened, parts, chunks, outcome)
        finally:
            opened.slot.release()
            if opened.stream is not None:
                await _close_quietly(opened.stream)
        text = "".join(parts)
        self._check_truncation((Choice(text=text, finish_reason=finish),), outcome.attempts)
        usage = self._usage(
            request, text, prompt_tokens, completion_tokens, "", outcome.requests + wasted
        )
        yield Delta(finish_reason=finish, usage=usage)

    async def _open_stream(self, attempt: Attempt, params: dict[str, Any]) -> _OpenStream:
        slot = await self._acquire(attempt)
        stream: Any = None
        try:
            async with attempt.timed() as timeout:
                with translate_errors(self.name, self._secrets):
                    attempt.sent()
                    raw = await self._client().chat.completions.with_raw_response.create(
                        **params, timeout=timeout
                    )
                    content_type = raw.headers.get("content-type", "")
                    if "json" in content_type.lower() and raw.status_code == 200:
                        body = await raw.http_response.aread()
                        whole = parse_completion(
                            content_type, body, provider=self.name, secrets=self._secrets
                        )
                        return _OpenStream(None, _no_chunks(), None, slot, whole)
                    if "event-stream" not in content_type.lower():
                        body = await raw.http_response.aread()
                        raise InvalidProviderResponseError(
                            f"{self.name} answered a streaming request with content type "
                            f"{content_type or 'none'!r} instead of an event stream (often a proxy "
                            f"page: check base_url); first bytes: {excerpt(body, self._secrets, 120)!r}",
                            provider=self.name,
                            status_code=raw.status_code,
                            excerpt=excerpt(body, self._secrets),
                        )
                    stream = raw.parse()
                    iterator = stream.__aiter__()
                    first = await anext(iterator, None)
                if first is None:
                    raise _EmptyStream(
                        f"{self.name} answered with an empty event stream (no chunks); "
                        "llama-cpp-python does this when the prompt does not fit its context "
                        "(--n_ctx).",
                        provider=self.name,
                        status_code=raw.status_code,
                    )
            return _OpenStream(stream, iterator, first, slot)
        except BaseException:
            slot.release()
            if stream is not None:
                await _close_quietly(stream)
            raise

    async def _next_chunk(
        self, opened: _OpenStream, parts: list[str], chunks: int, outcome: Outcome[Any]
    ) -> Any:
        attempts = outcome.attempts
        left = outcome.deadline_at - self._retrier.clock()
        limit = min(self.policy.timeout, left)
        try:
            if limit <= 0:
                raise TimeoutError
            async with asyncio.timeout(limit):
                with translate_errors(self.name, self._secrets):
                    return await anext(opened.iterator, None)
        except TimeoutError as exc:
            why: BaseException = exc
            what = (
                f"the total deadline of {self.policy.deadline:g} s passed (RetryPolicy.deadline)."
                if limit < self.policy.timeout
                else f"no chunk for {self.policy.timeout:g} s."
            )
        except InvalidProviderResponseError as err:
            why = err
            what = f"a malformed chunk: {err}"
        except ProviderError as err:
            if not _is_transport_break(err):
                err.attempts = attempts
                raise
            why = err.__cause__ or err
            what = str(err)
        raise StreamInterruptedError(
            f"{self.name}: the stream broke after {chunks} chunk(s): {what} The partial text is "
            "not a finished answer; ask again.",
            provider=self.name,
            partial_text="".join(parts),
            chunks=chunks,
            attempts=attempts,
        ) from why

    # ------------------------------------------------------------------ local servers, modes

    async def _ensure_slots(self) -> None:
        """Ask a local server once how many requests it serves at once (``max_concurrency``)."""
        if self._slots_known:
            return
        loop = asyncio.get_running_loop()
        probe = self._probes.get(loop)
        if probe is None:
            probe = self._probes[loop] = loop.create_future()
            try:
                assert self.base_url is not None  # a local server has one
                slots = await probe_slots(self._client(), self.base_url)
                self.limiter.set_max_concurrency(slots or LOCAL_DEFAULT_CONCURRENCY)
                self._slots_known = True
                log.info(
                    "local_server_slots",
                    provider=self.name,
                    max_concurrency=self.limiter.max_concurrency,
                    reported=slots is not None,
                )
            finally:
                probe.set_result(None)
        else:
            await asyncio.shield(probe)

    async def _acquire(self, attempt: Attempt) -> Slot:
        """Cool-down and rate within the attempt's wait budget; then the concurrency place,
        however long the callers ahead take (left out of the deadline: it is not an attempt)."""
        slot = await self.limiter.acquire(attempt.wait_budget(), slot_budget=float("inf"))
        attempt.credit(slot.queued)
        return slot

    async def _with_modes(
        self,
        request: Request,
        call: Callable[[dict[str, Any], StructuredOutput | None], Awaitable[Outcome[_T]]],
        *,
        stream: bool = False,
    ) -> tuple[Outcome[_T], int]:
        """Run ``call`` with the params of the current structured-output mode, falling back to
        the next mode when the server refuses one; returns the outcome and the refused requests."""
        wasted = 0
        while True:
            mode = self._modes[0]
            params = build_params(
                request,
                model=self.model,
                structured_output=mode,
                max_tokens_param=self.max_tokens_param,
                stream=stream,
                stream_usage=self.stream_usage,
            )
            params = self._with_tools(params, request, mode)
            # A schema (the reply's, or a forced tool call's) is what a server may refuse.
            guarded = mode if "response_format" in params else None
            try:
                return await call(params, guarded), wasted
            except _ModeRefused as refused:
                err = refused.error
                err.attempts = 1
                if len(self._modes) == 1:
                    if self.structured != "auto" and err.args and isinstance(err.args[0], str):
                        err.args = (
                            err.args[0] + f" The server may not support structured={mode!r}: "
                            "try structured='auto' (--structured auto).",
                            *err.args[1:],
                        )
                    raise err from err.__cause__
                wasted += 1
                self._drop_mode(mode, err)

    def _drop_mode(self, mode: StructuredOutput, err: ProviderError) -> None:
        if self._modes[0] != mode or len(self._modes) == 1:
            return  # another request already moved on
        self._modes = self._modes[1:]
        self.capabilities = self.capabilities.model_copy(
            update={"structured_output": self._modes[0] in ("json_schema", "json_object+schema")}
        )
        log.info(
            "structured_mode_fallback",
            provider=self.name,
            refused=mode,
            now=self._modes[0],
            status_code=err.status_code,
        )

    def _classify(self, err: ProviderError) -> RetryHint:
        hint = classify(err)
        if hint.retryable and not self.retry_timeouts and _may_still_run(err):
            if err.args and isinstance(err.args[0], str):
                err.args = (
                    err.args[0] + " Not re-sent: the server may still be generating it, and a "
                    "copy would queue behind it (pass retry_timeouts=True to re-send).",
                    *err.args[1:],
                )
            return RetryHint(False)
        return hint

    def _report_retry(self, info: RetryInfo) -> None:
        from accord.runtime import report_retry

        report_retry(
            attempt=info.attempt,
            delay_s=info.delay,
            error=info.error,
            status_code=info.status_code,
        )
        if self._on_retry is not None:
            self._on_retry(info)

    # ------------------------------------------------------------------ shared

    def _check_truncation(self, choices: tuple[Choice, ...], attempts: int) -> None:
        if self.on_truncation == "return":
            return
        for choice in choices:
            if choice.finish_reason == "length" or choice.finish_reason is None:
                why = (
                    "stopped at the token limit (finish_reason 'length'); raise max_tokens or "
                    "shorten the prompt"
                    if choice.finish_reason == "length"
                    else "ended without a finish_reason, so the output may be incomplete"
                    + (
                        " (llama-cpp-python ends a stream this way when another request "
                        "interrupts it: send one request at a time, or start it with "
                        "--interrupt_requests False)"
                        if self.local
                        else ""
                    )
                )
                raise TruncatedOutputError(
                    f"{self.name} {why}. Pass on_truncation='return' to accept partial output.",
                    provider=self.name,
                    status_code=200,
                    partial_text=choice.text,
                    finish_reason=choice.finish_reason,
                    attempts=attempts,
                )

    def _usage(
        self,
        request: Request,
        text: str,
        prompt: int | None,
        completion: int | None,
        model: str,
        requests: int,
    ) -> Usage:
        estimated = prompt is None or completion is None
        if prompt is None or completion is None:
            prompt = sum(estimate_tokens(m.content) for m in request.messages)
            completion = estimate_tokens(text)
            if not self._warned_usage:
                self._warned_usage = True
                log.warning(
                    "usage_estimated", provider=self.name, reason="the server reported no usage"
                )
        cost = cost_of(self.prices, (self.model, model), prompt, completion)
        return Usage(
            requests=requests,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=cost,
            estimated=estimated,
        )


# ---------------------------------------------------------------------- helpers


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise MissingDependencyError(
            "the openai SDK is not installed, and OpenAIBackend needs it. Install it with "
            "pip install 'openai>=1.40' (a dependency of accord; reinstalling accord brings it).",
            package="openai",
            extra="openai",
        ) from exc
    return openai


async def _refused_as(mode: StructuredOutput | None, attempt: Awaitable[_T]) -> _T:
    """Await ``attempt``; the server refusing structured-output ``mode`` becomes ``_ModeRefused``,
    which the retry layer does not retry."""
    try:
        return await attempt
    except ProviderError as err:
        if mode is not None and mode != "instructions" and mode_unsupported(err):
            raise _ModeRefused(mode, err) from err
        raise


def _may_still_run(err: ProviderError) -> bool:
    """True for a timeout after the request reached the server (not a connect timeout or 408)."""
    if not isinstance(err, ProviderTimeoutError) or err.status_code is not None:
        return False
    cause: BaseException | None = err.__cause__
    while cause is not None:
        if "ConnectTimeout" in type(cause).__name__ or "PoolTimeout" in type(cause).__name__:
            return False
        cause = cause.__cause__ or cause.__context__
    return True


def _is_transport_break(err: ProviderError) -> bool:
    """True when a mid-stream failure is the connection breaking, not an error event."""
    import openai

    cause = err.__cause__
    if isinstance(cause, openai.APIConnectionError):
        return True
    return isinstance(err, ProviderUnavailableError | ProviderTimeoutError) and not isinstance(
        cause, openai.APIError
    )


async def _no_chunks() -> AsyncIterator[Any]:
    return
    yield  # an async generator that yields nothing


async def _close_quietly(stream: Any) -> None:
    try:
        await stream.close()
    except Exception:  # closing a broken stream may raise what already broke it
        pass


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc, query=""))
    return urlunsplit(parts._replace(query="")) if parts.query else url
