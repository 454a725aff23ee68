"""Model backends behind one interface, and the name registry.

``OpenAIBackend`` (any OpenAI-compatible server) and ``HFBackend`` (a local transformers model)
are imported lazily: importing this package imports neither the openai SDK nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from accord.backends._registry import (
    DEFAULT_MODEL,
    backend,
    default_model,
    known_prefixes,
    register_backend,
)
from accord.backends.base import (
    Backend,
    Capabilities,
    ChatMessage,
    Choice,
    Completion,
    Delta,
    LogitsBackend,
    Request,
    TokenLogprob,
    ToolCall,
    ToolSpec,
)

if TYPE_CHECKING:
    from accord.backends.hf import HFBackend
    from accord.backends.openai import OpenAIBackend

__all__ = [
    "Backend",
    "LogitsBackend",
    "Capabilities",
    "ChatMessage",
    "Request",
    "Completion",
    "Choice",
    "Delta",
    "TokenLogprob",
    "ToolCall",
    "ToolSpec",
    "backend",
    "register_backend",
    "known_prefixes",
    "default_model",
    "DEFAULT_MODEL",
    "OpenAIBackend",
    "HFBackend",
]


def __getattr__(name: str) -> Any:
    if name == "OpenAIBackend":
        from accord.backends.openai import OpenAIBackend

        return OpenAIBackend
    if name == "HFBackend":
        from accord.backends.hf import HFBackend

        return HFBackend
    raise AttributeError(f"module 'accord.backends' has no attribute {name!r}")
