"""The backend seam: one small protocol every model provider implements.

A backend turns a :class:`Request` (chat messages plus sampling options) into a
:class:`Completion`, or streams it as :class:`Delta` chunks. Local backends may also implement
:class:`LogitsBackend` (next-token log-probabilities and continuation scoring) for token-level
ensembles and cooperative decoding. Cross-cutting concerns (retries, concurrency limits,
fallback) wrap a backend rather than subclass it.

Caveat: ``Request.agent``/``round``/``run_id`` only identify the caller (test fakes key on
them); a real backend must not send them to the provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from accord.messages import Usage

__all__ = [
    "ChatMessage",
    "ToolCall",
    "ToolSpec",
    "Request",
    "TokenLogprob",
    "Choice",
    "Completion",
    "Delta",
    "Capabilities",
    "Backend",
    "LogitsBackend",
]

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    """A model's request to call one tool (``arguments``: the JSON text as the model wrote it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    arguments: str = "{}"


class ToolSpec(BaseModel):
    """A tool as a model sees it: name, description and the JSON schema of its arguments."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    parameters: dict[str, Any]


class ChatMessage(BaseModel):
    """One chat turn sent to a model.

    An assistant turn may carry ``tool_calls``; a ``"tool"`` turn carries one call's result
    (``content``) with the ``tool_call_id`` and tool ``name`` it answers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


class Request(BaseModel):
    """What an agent asks a backend for. Frozen; build a new one with ``model_copy(update=...)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    messages: tuple[ChatMessage, ...]
    """The conversation, system prompt first."""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    n: int = 1
    """Number of candidates (a backend without ``capabilities.n`` is called n times)."""
    logprobs: bool = False
    top_logprobs: int | None = None
    response_schema: dict[str, Any] | None = None
    """JSON schema of the expected payload: structured output where the backend supports it."""
    schema_name: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    """Tools the model may ask to call (see :mod:`accord.tools`)."""
    tool_choice: str | None = None
    """``"auto"`` (default when tools are given), ``"required"``, ``"none"``, or a tool's name
    to force that tool."""
    agent: str = ""
    """Name of the calling agent (for fakes, logs and rate-limit accounting; never sent)."""
    round: int = 0
    """The calling agent's round."""
    run_id: str = ""
    """The run the call belongs to."""


class TokenLogprob(BaseModel):
    """Log-probability of one generated token, with the top alternatives when asked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


class Choice(BaseModel):
    """One candidate of a completion."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    finish_reason: str | None = "stop"
    logprobs: tuple[TokenLogprob, ...] | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    """Tools the model asked to call (empty for a plain answer)."""


class Completion(BaseModel):
    """A backend's answer to a request."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    choices: tuple[Choice, ...]
    usage: Usage = Usage()
    model: str = ""
    latency_s: float = 0.0

    @property
    def text(self) -> str:
        """The first candidate's text."""
        return self.choices[0].text

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The first candidate's tool calls."""
        return self.choices[0].tool_calls

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason

    @classmethod
    def of_text(cls, text: str, *, usage: Usage | None = None, model: str = "") -> Completion:
        """A one-candidate completion (handy in backends and tests)."""
        return cls(choices=(Choice(text=text),), usage=usage or Usage(requests=1), model=model)


class Delta(BaseModel):
    """One streamed chunk. The last chunk carries ``finish_reason`` and, when known, ``usage``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


class Capabilities(BaseModel):
    """What a backend can do beyond plain text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    streaming: bool = True
    structured_output: bool = False
    """Accepts a JSON schema (``response_format``) and constrains its output to it."""
    n: bool = False
    """Returns several candidates from one call."""
    logprobs: bool = False
    """Returns per-token log-probabilities (top-k alternatives) of its output."""
    logits: bool = False
    """Gives full next-token distributions and scores continuations (implements LogitsBackend)."""


@runtime_checkable
class Backend(Protocol):
    """A model behind accord's one interface.

    Implementations: ``accord.backends.OpenAIBackend`` (any OpenAI-compatible server),
    ``accord.backends.HFBackend`` (a local transformers model), ``accord.testing`` fakes.
    """

    name: str
    """``"provider:model"``, used in logs, usage tables and the run store."""
    capabilities: Capabilities

    async def complete(self, request: Request) -> Completion:
        """Answer the request in one piece."""
        ...

    def stream(self, request: Request) -> AsyncIterator[Delta]:
        """Answer the request chunk by chunk (an async generator)."""
        ...


@runtime_checkable
class LogitsBackend(Backend, Protocol):
    """A backend with access to the model's distributions (local models).

    ``next_token_logprobs`` returns, per prompt, the log-probabilities of the next token over the
    vocabulary as a dict ``{token_id: logprob}`` restricted to the ``top_k`` most likely (all
    tokens when ``top_k`` is None). ``score`` returns the per-token log-probabilities of
    ``continuation`` given ``prompt``.
    """

    async def next_token_logprobs(
        self, prompts: Sequence[str], *, top_k: int | None = None
    ) -> list[dict[int, float]]: ...

    async def score(self, prompt: str, continuation: str) -> list[float]: ...
