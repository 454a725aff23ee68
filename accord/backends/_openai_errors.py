"""The one place where openai SDK (and transport) exceptions become accord errors.

:func:`translate_errors` wraps every SDK call; :func:`map_exception` is its pure core and
:func:`classify` tells the retry layer which accord errors to retry and what the provider asked to
wait (``retry-after-ms``, ``retry-after`` in seconds or as an HTTP date, ``x-should-retry``).
Provider text is redacted before it reaches a message: the API key, ``sk-...`` tokens and bearer
credentials become ``***``; the SDK exception kept as ``__cause__`` is scrubbed the same way.

Caveat: openai 3.x sits on ``httpx2`` and 1.x on ``httpx``; transport exceptions are recognised by
their class hierarchy and module prefix, never by importing either.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from accord.backends._retry import RetryHint, default_classify
from accord.errors import (
    AccordError,
    InvalidProviderResponseError,
    ProviderAuthError,
    ProviderError,
    ProviderRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    RefusalError,
    TruncatedOutputError,
)

__all__ = [
    "translate_errors",
    "map_exception",
    "classify",
    "redact",
    "excerpt",
    "parse_retry_after",
]

_SK = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
_TRANSPORT_MODULES = ("httpx", "httpx2", "httpcore", "h11", "h2", "anyio", "ssl", "socket")


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with the given secrets, ``sk-...`` keys and bearer tokens replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _SK.sub("sk-***", text)
    return _BEARER.sub(r"\1***", text)


def excerpt(raw: object, secrets: Sequence[str] = (), limit: int = 500) -> str:
    """A redacted, whitespace-collapsed excerpt of a body of at most ``limit`` characters."""
    if isinstance(raw, bytes | bytearray):
        text = bytes(raw[: limit * 4]).decode("utf-8", "replace")
    elif isinstance(raw, str):
        text = raw[: limit * 4]
    else:
        try:
            text = json.dumps(raw)[: limit * 4]
        except (TypeError, ValueError):
            text = repr(raw)[: limit * 4]
    text = " ".join(redact(text, secrets).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the provider asked to wait: ``retry-after-ms``, then ``retry-after``.

    ``retry-after`` may be seconds (floats allowed) or an HTTP date. Returns None when absent
    or unreadable; a date in the past gives 0.
    """
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    value = headers.get("retry-after")
    if value:
        parsed = email.utils.parsedate_tz(value)
        if parsed is not None:
            return max(0.0, float(email.utils.mktime_tz(parsed) - time.time()))
    return None


@contextmanager
def translate_errors(provider: str, secrets: Sequence[str] = ()) -> Iterator[None]:
    """Re-raise anything but accord errors and cancellation as an accord ``ProviderError``.

    Example::

        with translate_errors("openai:gpt-4o-mini", secrets=(api_key,)):
            raw = await client.chat.completions.with_raw_response.create(...)
    """
    try:
        yield
    except AccordError:
        raise
    except Exception as exc:
        raise map_exception(exc, provider=provider, secrets=secrets) from exc


def map_exception(
    exc: BaseException, *, provider: str, secrets: Sequence[str] = ()
) -> ProviderError:
    """The accord error for an SDK or transport exception (also scrubs ``exc`` of secrets)."""
    import openai  # already imported by the backend that raised ``exc``

    _scrub(exc, secrets)
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    detail = _provider_message(exc, secrets)
    kw: dict[str, Any] = {"provider": provider, "status_code": status}

    if isinstance(exc, openai.LengthFinishReasonError):
        return TruncatedOutputError(
            f"{provider} stopped at the token limit (finish_reason 'length'). Raise max_tokens "
            "or shorten the prompt.",
            finish_reason="length",
            **kw,
        )
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return RefusalError(f"{provider} withheld the answer (content filter).", **kw)
    if isinstance(exc, openai.APIResponseValidationError):
        return InvalidProviderResponseError(
            f"{provider} answered with a body that is not a valid completion: {detail}",
            excerpt=detail,
            **kw,
        )
    if isinstance(exc, openai.APIStatusError):
        return _from_status(exc, exc.status_code, detail, kw)
    if isinstance(exc, openai.APITimeoutError) or _is_timeout(exc):
        return ProviderTimeoutError(
            f"{provider}: the request timed out ({type(exc).__name__}). Check that the server "
            "is up, or raise RetryPolicy(timeout=...).",
            **kw,
        )
    if isinstance(exc, openai.APIConnectionError) or _is_transport(exc):
        cause = exc.__cause__ if isinstance(exc, openai.APIConnectionError) else None
        why = type(cause or exc).__name__
        text = excerpt(str(cause), secrets, 200) if cause is not None else detail
        return ProviderUnavailableError(
            f"{provider}: connection failed ({why}: {text or 'no detail'}). Check base_url and "
            "that the server is running.",
            **kw,
        )
    if isinstance(exc, openai.APIError):
        return _from_error_body(exc.body, detail, kw)
    if isinstance(exc, ValueError):
        return InvalidProviderResponseError(
            f"{provider} sent a body accord could not decode ({type(exc).__name__}: {detail}).",
            excerpt=detail,
            **kw,
        )
    if type(exc).__name__ == "SubjectTokenProviderError":
        return ProviderAuthError(f"{provider}: could not obtain credentials: {detail}", **kw)
    if type(exc).__name__.startswith("WebSocket"):
        return ProviderUnavailableError(f"{provider}: {type(exc).__name__}: {detail}", **kw)
    return ProviderRequestError(
        f"{provider}: the openai SDK failed ({type(exc).__name__}: {detail}).",
        **kw,
    )


def classify(err: ProviderError) -> RetryHint:
    """Retry 408, 409, 429, 5xx, connection errors and timeouts; honour ``Retry-After``."""
    hint = default_classify(err)
    response = getattr(err.__cause__, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return hint
    if headers.get("x-should-retry") == "false":
        return RetryHint(False)
    retry_after = parse_retry_after(headers)
    if retry_after is not None and hint.retryable:
        return RetryHint(True, retry_after)
    return hint


# ---------------------------------------------------------------------- internals


def _from_status(exc: Any, status: int, detail: str, kw: dict[str, Any]) -> ProviderError:
    provider = kw["provider"]
    said = f": {detail}" if detail else ""
    if status in (401, 403):
        fix = (
            "Check the API key (api_key= or OPENAI_API_KEY)"
            if status == 401
            else "Check the key's permissions"
        )
        return ProviderAuthError(
            f"{provider} rejected the credentials ({status}){said}. {fix}.", **kw
        )
    if status == 429:
        headers = getattr(getattr(exc, "response", None), "headers", None)
        return RateLimitedError(
            f"{provider} rate-limited the request (429){said}.",
            retry_after=parse_retry_after(headers),
            **kw,
        )
    if status == 408:
        return ProviderTimeoutError(f"{provider} timed out the request (408){said}.", **kw)
    if status == 409 or status >= 500:
        return ProviderUnavailableError(f"{provider} failed with status {status}{said}.", **kw)
    return ProviderRequestError(
        f"{provider} rejected the request ({status}){said}. Fix the request; it is not retried.",
        **kw,
    )


def _from_error_body(body: object, detail: str, kw: dict[str, Any]) -> ProviderError:
    """An error reported without a status (an SSE ``error`` event mid-stream)."""
    provider = kw["provider"]
    fields = body if isinstance(body, dict) else {}
    kind = " ".join(str(fields.get(k, "")) for k in ("type", "code")).lower()
    message = f"{provider} reported an error in the stream: {detail or 'no detail'}"
    if "rate" in kind and "limit" in kind:
        return RateLimitedError(message, **kw)
    if any(word in kind for word in ("server", "overload", "unavailable", "internal", "timeout")):
        return ProviderUnavailableError(message, **kw)
    return ProviderRequestError(message, **kw)


def _provider_message(exc: BaseException, secrets: Sequence[str]) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return excerpt(inner["message"], secrets, 300)
        if isinstance(inner, str):
            return excerpt(inner, secrets, 300)
    if isinstance(body, str) and body:
        return excerpt(body, secrets, 300)
    message = getattr(exc, "message", None)
    text = message if isinstance(message, str) else str(exc)
    return excerpt(text, secrets, 300)


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or any(
        "Timeout" in cls.__name__ and cls.__module__.split(".")[0] in _TRANSPORT_MODULES
        for cls in type(exc).__mro__
    )


def _is_transport(exc: BaseException) -> bool:
    return isinstance(exc, OSError | EOFError) or any(
        cls.__module__.split(".")[0] in _TRANSPORT_MODULES for cls in type(exc).__mro__[:-2]
    )


def _scrub(exc: BaseException, secrets: Sequence[str]) -> None:
    """Redact secrets from the SDK exception chain that accord keeps as ``__cause__``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in current.args)
        message = getattr(current, "message", None)
        if isinstance(message, str):
            try:
                current.message = redact(message, secrets)  # type: ignore[attr-defined]
            except AttributeError:
                pass
        body = getattr(current, "body", None)
        if body is not None:
            try:
                current.body = _redact_json(body, secrets)  # type: ignore[attr-defined]
            except AttributeError:
                pass
        current = current.__cause__ or current.__context__


def _redact_json(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: _redact_json(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v, secrets) for v in value]
    return value
