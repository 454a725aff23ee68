"""The one mapping from openai SDK and transport exceptions to accord errors."""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import json
import time
from typing import Any

import httpx2
import openai
import openai._exceptions
import pytest
from fault_server import CANARY_KEY

from accord.backends._openai_errors import (
    classify,
    excerpt,
    map_exception,
    parse_retry_after,
    redact,
    translate_errors,
)
from accord.errors import (
    ConfigError,
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

EXPECTED: dict[str, type[ProviderError]] = {
    "OpenAIError": ProviderRequestError,
    "APIError": ProviderRequestError,
    "APIStatusError": ProviderRequestError,
    "BadRequestError": ProviderRequestError,
    "AuthenticationError": ProviderAuthError,
    "OAuthError": ProviderAuthError,
    "PermissionDeniedError": ProviderAuthError,
    "NotFoundError": ProviderRequestError,
    "ConflictError": ProviderUnavailableError,
    "UnprocessableEntityError": ProviderRequestError,
    "RateLimitError": RateLimitedError,
    "InternalServerError": ProviderUnavailableError,
    "APIConnectionError": ProviderUnavailableError,
    "APITimeoutError": ProviderTimeoutError,
    "APIResponseValidationError": InvalidProviderResponseError,
    "LengthFinishReasonError": TruncatedOutputError,
    "ContentFilterFinishReasonError": RefusalError,
    "InvalidWebhookSignatureError": InvalidProviderResponseError,
    "SubjectTokenProviderError": ProviderAuthError,
    "WebSocketConnectionClosedError": ProviderUnavailableError,
    "WebSocketQueueFullError": ProviderUnavailableError,
}
"""Every exception class the installed SDK defines, and the accord error it must become."""


def sdk_exception_classes() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module in (openai, openai._exceptions):
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, BaseException)
                and obj.__module__.startswith("openai")
                and not name.startswith("_")
            ):
                found[name] = obj
    return sorted(found.values(), key=lambda c: c.__name__)


def instance_of(cls: type[BaseException], status: int | None = None) -> BaseException:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    code = status or (
        cls.status_code if isinstance(getattr(cls, "status_code", None), int) else 500
    )  # type: ignore[attr-defined]
    if cls.__name__ == "APIStatusError" and status is None:
        code = 418
    response = httpx2.Response(code, request=request, headers={"retry-after": "3"})
    attempts: list[Any] = [
        lambda: cls("boom", response=response, body={"message": "boom"}),  # type: ignore[call-arg]
        lambda: cls(response=response, body=None),  # type: ignore[call-arg]
        lambda: cls(response, None),  # type: ignore[call-arg]
        lambda: cls(request=request),  # type: ignore[call-arg]
        lambda: cls(request),  # type: ignore[call-arg]
        lambda: cls("boom", request, body={"message": "boom"}),  # type: ignore[call-arg]
        lambda: cls(completion=openai.types.chat.ChatCompletion.construct(usage=None)),  # type: ignore[call-arg]
        lambda: cls("boom", unsent_messages=[]),  # type: ignore[call-arg]
        lambda: cls("boom"),
        lambda: cls(),
    ]
    for make in attempts:
        try:
            return make()  # type: ignore[no-any-return]
        except TypeError:
            continue
    raise AssertionError(f"cannot build {cls.__name__}")


def test_error_mapping_covers_every_sdk_exception_class() -> None:
    classes = sdk_exception_classes()
    assert len(classes) >= 15
    unknown = sorted({c.__name__ for c in classes} - set(EXPECTED))
    assert unknown == [], f"new SDK exception classes need a mapping decision: {unknown}"
    for cls in classes:
        mapped = map_exception(instance_of(cls), provider="openai:m")
        assert type(mapped) is EXPECTED[cls.__name__], cls.__name__
        assert mapped.provider == "openai:m"


def test_error_mapping_rate_limit_keeps_retry_after_and_status() -> None:
    mapped = map_exception(instance_of(openai.RateLimitError), provider="p")
    assert isinstance(mapped, RateLimitedError)
    assert (mapped.retry_after, mapped.status_code) == (3.0, 429)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx2.ConnectError("refused"), ProviderUnavailableError),
        (httpx2.RemoteProtocolError("incomplete chunked read"), ProviderUnavailableError),
        (httpx2.ReadTimeout("slow"), ProviderTimeoutError),
        (TimeoutError(), ProviderTimeoutError),
        (ConnectionResetError(), ProviderUnavailableError),
        (json.JSONDecodeError("Expecting value", "<html>", 0), InvalidProviderResponseError),
        (RuntimeError("something else"), ProviderRequestError),
    ],
)
def test_error_mapping_covers_transport_and_decoding_errors(
    exc: BaseException, expected: type[ProviderError]
) -> None:
    assert type(map_exception(exc, provider="p")) is expected


def test_error_mapping_handles_legacy_httpx_exceptions() -> None:
    httpx = pytest.importorskip("httpx")
    assert type(map_exception(httpx.ReadTimeout("slow"), provider="p")) is ProviderTimeoutError
    assert (
        type(map_exception(httpx.RemoteProtocolError("cut"), provider="p"))
        is ProviderUnavailableError
    )


async def test_translate_errors_chains_the_sdk_error_and_passes_accord_errors() -> None:
    original = instance_of(openai.InternalServerError)
    with pytest.raises(ProviderUnavailableError) as info, translate_errors("p"):
        raise original
    assert info.value.__cause__ is original
    config = ConfigError("mine")
    with pytest.raises(ConfigError) as same, translate_errors("p"):
        raise config
    assert same.value is config
    with pytest.raises(asyncio.CancelledError), translate_errors("p"):
        raise asyncio.CancelledError


def test_error_mapping_redacts_the_key_in_the_error_and_its_cause() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    body = {"error": {"message": f"Incorrect API key provided: {CANARY_KEY}"}}
    sdk = openai.AuthenticationError(
        f"Error code: 401 - {body}", response=httpx2.Response(401, request=request), body=body
    )
    mapped = map_exception(sdk, provider="p", secrets=(CANARY_KEY,))
    assert isinstance(mapped, ProviderAuthError)
    assert "Incorrect API key provided" in str(mapped)
    for text in (str(mapped), str(sdk), repr(sdk), sdk.message, json.dumps(sdk.body)):
        assert CANARY_KEY not in text


def test_redact_hides_keys_tokens_and_bearer_credentials() -> None:
    text = f"key {CANARY_KEY}, other sk-proj-abcdef123456 and Authorization: Bearer xyz.abc-123, short sk-1"
    out = redact(text, (CANARY_KEY,))
    assert CANARY_KEY not in out and "abcdef123456" not in out and "xyz.abc-123" not in out
    assert "Bearer ***" in out and "short sk-1" in out


def test_excerpt_is_collapsed_redacted_and_at_most_500_characters() -> None:
    raw = ("<p>\n  hello   world </p>" + "y" * 2000 + CANARY_KEY).encode()
    out = excerpt(raw, (CANARY_KEY,))
    assert out.startswith("<p> hello world </p>")
    assert len(out) <= 500 and CANARY_KEY not in out


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "inf"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after_reads_seconds_and_milliseconds(
    headers: dict[str, str], expected: float | None
) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_reads_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = parse_retry_after({"retry-after": when})
    assert seconds is not None and 27 <= seconds <= 31


def test_classify_honours_retry_after_on_5xx_and_x_should_retry() -> None:
    unavailable = map_exception(instance_of(openai.InternalServerError, 503), provider="p")
    unavailable.__cause__ = instance_of(openai.InternalServerError, 503)
    hint = classify(unavailable)
    assert (hint.retryable, hint.retry_after) == (True, 3.0)
    bad = map_exception(instance_of(openai.BadRequestError), provider="p")
    bad.__cause__ = instance_of(openai.BadRequestError)
    assert classify(bad).retryable is False
    request = httpx2.Request("POST", "http://x/v1")
    stop = openai.InternalServerError(
        "x",
        response=httpx2.Response(500, request=request, headers={"x-should-retry": "false"}),
        body=None,
    )
    mapped = map_exception(stop, provider="p")
    mapped.__cause__ = stop
    assert classify(mapped).retryable is False
