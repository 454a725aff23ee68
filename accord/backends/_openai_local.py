"""What ``OpenAIBackend`` needs to know about the server it talks to, beyond the OpenAI API.

:func:`check_base_url` refuses a ``base_url`` that the SDK would turn into retried connection
errors (no scheme, no host); :func:`is_local` tells a server on this machine or a private network
(loopback, private and link-local addresses, ``localhost``) from a hosted API; :func:`probe_slots`
asks a local server how many requests it serves at once (llama.cpp's ``llama-server`` answers
``GET /props`` and ``GET /slots``); :func:`mode_unsupported` recognises a server refusing a
structured-output mode (llama-cpp-python answers 500 to ``json_schema``), so ``structured="auto"``
can fall back to the next mode.

Caveat: a server that answers neither ``/props`` nor ``/slots`` (llama-cpp-python, Ollama, vLLM)
gets :data:`LOCAL_DEFAULT_CONCURRENCY`; raise it with ``max_concurrency=`` (``--concurrency``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from accord.errors import ConfigError, ProviderError, ProviderRequestError, ProviderUnavailableError

__all__ = [
    "LOCAL_DEFAULT_CONCURRENCY",
    "check_base_url",
    "is_local",
    "probe_slots",
    "mode_unsupported",
]

LOCAL_DEFAULT_CONCURRENCY = 1
"""Requests in flight at once to a local server that does not say how many slots it has."""

_MODE_WORDS = re.compile(
    r"response_format|json_schema|json_object|schema|grammar|format|not supported|unsupported",
    re.IGNORECASE,
)


def check_base_url(url: str) -> None:
    """Refuse a ``base_url`` without ``http://``/``https://`` or without a host.

    Raises:
        ConfigError: saying how to write it.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fixed = url if "://" in url else f"http://{url}"
        raise ConfigError(
            f"base_url {url!r} is not an http:// or https:// URL with a host. Write it in full, "
            f"e.g. {fixed!r} (the server's OpenAI-compatible /v1 root)."
        )


def is_local(url: str | None) -> bool:
    """True for a server on this machine or a private network (where one request costs a slot)."""
    if not url:
        return False
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


async def probe_slots(client: Any, base_url: str, wait: float = 3.0) -> int | None:
    """How many requests a llama.cpp-style server serves at once, or None when it does not say.

    Tries ``GET /props`` (``total_slots``) then ``GET /slots`` (a list, one entry per slot) at
    the server's root (``base_url`` without its ``/v1``). Never raises.
    """
    root = re.sub(r"/v1/?$", "", base_url.rstrip("/"))
    for path, read in (("/props", _slots_from_props), ("/slots", _slots_from_list)):
        try:
            async with asyncio.timeout(wait):
                data = await client.get(
                    root + path,
                    cast_to=object,
                    options={"timeout": wait, "max_retries": 0},
                )
        except Exception:  # no such route, not JSON, not reachable: the server does not say
            continue
        slots = read(data)
        if slots is not None:
            return slots
    return None


def _slots_from_props(data: Any) -> int | None:
    value = data.get("total_slots") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _slots_from_list(data: Any) -> int | None:
    return len(data) if isinstance(data, list) and data else None


def mode_unsupported(err: ProviderError) -> bool:
    """True when a rejected request looks like the server refusing its structured-output mode.

    A 400/404/415/422 request error or a 500/501 whose text mentions the format, the schema or
    the grammar. Context overflows, auth errors and overload (502-504, 429) are not.
    """
    status = err.status_code
    if isinstance(err, ProviderRequestError) and status in (400, 404, 415, 422):
        return bool(_MODE_WORDS.search(str(err)))
    if isinstance(err, ProviderUnavailableError) and status in (500, 501):
        return status == 501 or bool(_MODE_WORDS.search(str(err))) or "json" in str(err).lower()
    return False
