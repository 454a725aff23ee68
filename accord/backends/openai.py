"""``OpenAIBackend``: any OpenAI-compatible chat-completions server through the official SDK.

OpenAI itself, vLLM, llama.cpp, Ollama, TGI, LiteLLM: one backend, addressed as
``"openai:MODEL"``. The SDK (``AsyncOpenAI``) is imported when the first backend is built, never
by ``import accord``, and is built with ``max_retries=0``: accord's :class:`~accord.backends._retry.
Retrier` is the only retry layer. Every SDK exception becomes an accord error in one place
(``_openai_errors``); a 200 with HTML, broken JSON, no choices or a null message is an error too,
and so is output cut at the token limit (``on_truncation="error"``, the default).

Example::

    backend = OpenAIBackend("gpt-4o-mini", max_concurrency=8, prices={"gpt-4o-mini": (0.15, 0.6)})
    local = OpenAIBackend("tiny", base_url="http://127.0.0.1:8080/v1")

Caveat: one instance is the unit of sharing: its concurrency limit, rate limit and 429
cool-down apply to every agent that uses that instance, not to other instances.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from accord._log import get_logger
from accord.backends._guard import check_real_call_allowed
from accord.backends._limits import Limiter, Slot
from accord.backends._openai_convert import (
    ParsedCompletion,
    StructuredOutput,
    build_params,
    estimate_tokens,
    parse_completion,
    read_chunk,
    schema_instructions,
)
from accord.backends._openai_errors import classify, excerpt, translate_errors
from accord.backends._pricing import Price, PriceTable, cost_of, normalize_prices
from accord.backends._retry import Attempt, Retrier, RetryInfo, RetryPolicy
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

__all__ = ["OpenAIBackend", "RetryPolicy", "RetryInfo", "Price"]

log = get_logger(__name__)

_OFFICIAL_HOST = "api.openai.com"
_NO_KEY = "no-key"


@dataclass
class _OpenStream:
    stream: Any
    iterator: AsyncIterator[Any]
    first: Any
    slot: Slot


class OpenAIBackend:
    """A model behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Args:
        model: the model name sent to the server.
        base_url: the server's ``.../v1`` URL; default ``OPENAI_BASE_URL`` or OpenAI itself.
        api_key: the key; default ``OPENAI_API_KEY``. Optional for servers other than OpenAI.
        timeout: seconds one attempt may take (shorthand for ``retry.timeout``).
        retry: attempts, timeout, total deadline and waits (:class:`RetryPolicy`).
        max_concurrency: most requests in flight at once across all callers of this instance.
        requests_per_second: average request rate across all callers (a token bucket).
        burst: requests that may start at once before the rate applies.
        structured_output: how a ``response_schema`` is sent: ``"json_schema"`` (the schema as
            ``response_format``), ``"json_object"`` (JSON mode plus the schema as an instruction)
            or ``"instructions"`` (only the instruction). Default: ``"json_schema"`` for OpenAI,
            ``"json_object"`` for other servers (many local servers reject ``json_schema``).
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
        structured_output: StructuredOutput | None = None,
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
        if structured_output not in (None, "json_schema", "json_object", "instructions"):
            raise ConfigError(
                f"structured_output must be 'json_schema', 'json_object' or 'instructions', "
                f"got {structured_output!r}."
            )
        if tool_calling not in ("native", "prompt"):
            raise ConfigError(f"tool_calling must be 'native' or 'prompt', got {tool_calling!r}.")
        self.tool_calling = tool_calling
        if on_truncation not in ("error", "return"):
            raise ConfigError(f"on_truncation must be 'error' or 'return', got {on_truncation!r}.")
        self.model = model
        self.name = f"openai:{model}"
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        official = self.base_url is None or urlsplit(self.base_url).hostname == _OFFICIAL_HOST
        key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if key is None and official:
            raise ConfigError(
                f"no API key for {self.name}: pass api_key=... or set OPENAI_API_KEY. For another "
                "OpenAI-compatible server pass base_url='http://host:port/v1'."
            )
        self._api_key = SecretStr(key or _NO_KEY)
        self._has_key = key is not None
        self.policy = retry or RetryPolicy()
        if timeout is not None:
            self.policy = self.policy.model_copy(update={"timeout": float(timeout)})
        self.structured_output: StructuredOutput = structured_output or (
            "json_schema" if official else "json_object"
        )
        self.on_truncation = on_truncation
        self.native_n = official if native_n is None else native_n
        self.stream_usage = stream_usage
        self.max_tokens_param = max_tokens_param
        self.prices: dict[str, Price] = normalize_prices(prices)
        self._default_headers = dict(default_headers or {})
        self.capabilities = Capabilities(
            streaming=True,
            structured_output=self.structured_output == "json_schema",
            n=self.native_n,
            logprobs=True,
            logits=False,
        )
        self.limiter = Limiter(
            provider=self.name,
            max_concurrency=max_concurrency,
            requests_per_second=requests_per_second,
            burst=burst,
            sleep=sleep,
            clock=clock,
        )
        self._retrier = Retrier(
            provider=self.name,
            policy=self.policy,
            classify=classify,
            sleep=sleep,
            clock=clock,
            on_retry=on_retry,
            on_rate_limited=self.limiter.cool_down,
        )
        self._clients: dict[asyncio.AbstractEventLoop, AsyncOpenAI] = {}
        self._warned_usage = False

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
            )
            self._clients[loop] = client
        return client

    # ------------------------------------------------------------------ complete

    async def complete(self, request: Request) -> Completion:
        """Answer ``request`` in one piece.

        Raises:
            ProviderError: a subclass saying what failed (see ``accord.errors``); a stopped-early
                output raises ``TruncatedOutputError`` unless ``on_truncation="return"``.
        """
        check_real_call_allowed(self.name)
        if request.n > 1 and not self.native_n:
            return await self._complete_n(request)
        started = time.perf_counter()
        params = build_params(
            request,
            model=self.model,
            structured_output=self.structured_output,
            max_tokens_param=self.max_tokens_param,
        )
        params = self._with_tools(params, request)
        outcome = await self._retrier.call(lambda attempt: self._complete_once(attempt, params))
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
            outcome.attempts,
        )
        return Completion(
            choices=parsed.choices,
            usage=usage,
            model=parsed.model or self.model,
            latency_s=time.perf_counter() - started,
        )

    def _with_tools(self, params: dict[str, Any], request: Request) -> dict[str, Any]:
        schema = request.response_schema
        note = (
            schema_instructions(schema)
            if schema is not None and self.structured_output != "json_schema"
            else None
        )
        return apply_tools(
            params,
            request,
            self.tool_calling,
            note,
            json_schema_format=self.structured_output == "json_schema",
        )

    async def _complete_once(self, attempt: Attempt, params: dict[str, Any]) -> ParsedCompletion:
        async with self.limiter.slot(attempt.wait_budget()), attempt.timed() as timeout:
            with translate_errors(self.name, self._secrets):
                raw = await self._client().chat.completions.with_raw_response.create(
                    **params, timeout=timeout
                )
                content_type = raw.headers.get("content-type", "")
                body = raw.content
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

        Yields text deltas, then one last delta with ``finish_reason`` and ``usage`` (estimated
        when the server sends no usage chunk). Retries happen only until the first chunk arrives.
        Log-probabilities are not streamed: use :meth:`complete` for them.

        Raises:
            StreamInterruptedError: the stream broke after it started (``partial_text`` kept).
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
        params = build_params(
            request,
            model=self.model,
            structured_output=self.structured_output,
            max_tokens_param=self.max_tokens_param,
            stream=True,
            stream_usage=self.stream_usage,
        )
        outcome = await self._retrier.call(lambda attempt: self._open_stream(attempt, params))
        opened = outcome.value
        parts: list[str] = []
        chunks = 0
        finish: str | None = None
        prompt_tokens: int | None = None
        completion_tokens: int | None = None
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
                chunk = await self._next_chunk(opened, parts, chunks, outcome.attempts)
        finally:
            opened.slot.release()
            await _close_quietly(opened.stream)
        text = "".join(parts)
        self._check_truncation((Choice(text=text, finish_reason=finish),), outcome.attempts)
        usage = self._usage(request, text, prompt_tokens, completion_tokens, "", outcome.attempts)
        yield Delta(finish_reason=finish, usage=usage)

    async def _open_stream(self, attempt: Attempt, params: dict[str, Any]) -> _OpenStream:
        slot = await self.limiter.acquire(attempt.wait_budget())
        stream: Any = None
        try:
            async with attempt.timed() as timeout:
                with translate_errors(self.name, self._secrets):
                    raw = await self._client().chat.completions.with_raw_response.create(
                        **params, timeout=timeout
                    )
                    content_type = raw.headers.get("content-type", "")
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
                    raise InvalidProviderResponseError(
                        f"{self.name} answered with an empty event stream (no chunks).",
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
        self, opened: _OpenStream, parts: list[str], chunks: int, attempts: int
    ) -> Any:
        try:
            async with asyncio.timeout(self.policy.timeout):
                with translate_errors(self.name, self._secrets):
                    return await anext(opened.iterator, None)
        except TimeoutError as exc:
            why: BaseException = exc
            what = f"no chunk for {self.policy.timeout:g} s"
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
            requests=requests, prompt_tokens=prompt, completion_tokens=completion, cost=cost
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


def _is_transport_break(err: ProviderError) -> bool:
    """True when a mid-stream failure is the connection breaking, not an error event."""
    import openai

    cause = err.__cause__
    if isinstance(cause, openai.APIConnectionError):
        return True
    return isinstance(err, ProviderUnavailableError | ProviderTimeoutError) and not isinstance(
        cause, openai.APIError
    )


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
