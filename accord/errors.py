"""Every exception accord raises, split by whose fault it is.

The tree::

    AccordError
    ├── UsageError                 the program using accord must change
    │   ├── GraphError             invalid graph (names the nodes, says how to fix it)
    │   ├── UnknownBackendError    unknown "provider:model" prefix (did you mean ...?)
    │   ├── MissingDependencyError optional extra not installed (names the extra)
    │   ├── TemplateError          template missing, or a variable it needs not given
    │   │   └── TemplateSecurityError  template tried to reach unsafe attributes
    │   ├── ConfigError            bad option, bad config file, bad argument
    │   │   └── MergeConfigError   merge config names something accord cannot do
    │   ├── InvalidFilterError     a store filter key or operator that is not allowed
    │   └── ScriptExhaustedError   a test backend was asked for more replies than scripted
    └── RunError                   something failed while running
        ├── ProviderError          a model provider failed (status_code, provider)
        │   ├── RateLimitedError           429 after retries, or retry-after beyond the cap
        │   ├── ProviderUnavailableError   5xx, connection refused or reset, after retries
        │   ├── ProviderTimeoutError       per-attempt timeout or total deadline passed
        │   ├── ProviderAuthError          401 / 403 (the key is never shown)
        │   ├── ProviderRequestError       other 4xx: the request itself is wrong
        │   ├── InvalidProviderResponseError  200 with HTML, broken JSON, no choices
        │   ├── EmptyCompletionError       the model returned no content
        │   ├── RefusalError               the model refused
        │   ├── StreamInterruptedError     a stream broke after it started (partial_text)
        │   └── TruncatedOutputError       finish_reason "length" or a missing finish_reason
        ├── OutputValidationError  the reply never matched the expected payload (raw text kept)
        ├── MessageTypeError       a node returned a type it did not declare
        ├── StepLimitError         the run reached its step limit
        ├── NodeError              a node raised something else (the original is __cause__)
        ├── NodeTimeoutError       one node took longer than its timeout
        ├── MergeError             a merge failed its checks before or after writing
        ├── EnsembleError          an ensemble method could not produce an answer
        └── StoreError             the run store failed
            ├── StoreCorruptError  a record or the file is damaged
            ├── StoreVersionError  the store was written by a newer accord
            ├── StoreDecodeError   a record holds something accord never writes
            └── RunBusyError       another process is executing that run

Errors keep their facts as attributes, chain their cause (``raise ... from exc``), and never log
when they are created. Messages read "what happened, which rule, how to fix".
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccordError",
    "UsageError",
    "GraphError",
    "UnknownBackendError",
    "MissingDependencyError",
    "TemplateError",
    "TemplateSecurityError",
    "ConfigError",
    "MergeConfigError",
    "InvalidFilterError",
    "ScriptExhaustedError",
    "RunError",
    "ProviderError",
    "RateLimitedError",
    "ProviderUnavailableError",
    "ProviderTimeoutError",
    "ProviderAuthError",
    "ProviderRequestError",
    "InvalidProviderResponseError",
    "EmptyCompletionError",
    "RefusalError",
    "StreamInterruptedError",
    "TruncatedOutputError",
    "OutputValidationError",
    "MessageTypeError",
    "StepLimitError",
    "NodeError",
    "NodeTimeoutError",
    "MergeError",
    "EnsembleError",
    "StoreError",
    "StoreCorruptError",
    "StoreVersionError",
    "StoreDecodeError",
    "RunBusyError",
    "ToolLoopError",
]


class AccordError(Exception):
    """Base of every accord exception. ``result`` holds the partial run result when the error
    ended a graph run (a ``UsageError`` raised by a node, such as a missing backend, included)."""

    result: Any = None


# ---------------------------------------------------------------- usage errors


class UsageError(AccordError):
    """The program using accord must change: bad graph, bad name, bad config."""


class GraphError(UsageError):
    """A graph failed validation. ``problems`` lists every problem found, ``nodes`` the nodes named."""

    def __init__(
        self, message: str, *, nodes: tuple[str, ...] = (), problems: tuple[str, ...] = ()
    ):
        super().__init__(message)
        self.nodes = nodes
        self.problems = problems or (message,)


class UnknownBackendError(UsageError):
    """A backend name whose prefix accord does not know."""

    def __init__(self, message: str, *, name: str, known: tuple[str, ...]):
        super().__init__(message)
        self.name = name
        self.known = known


class MissingDependencyError(UsageError):
    """An optional dependency is not installed; ``extra`` names the extra that brings it."""

    def __init__(self, message: str, *, package: str, extra: str):
        super().__init__(message)
        self.package = package
        self.extra = extra


class TemplateError(UsageError):
    """A prompt template is missing, invalid, or needs a variable that was not given."""

    def __init__(self, message: str, *, template: str, variable: str | None = None):
        super().__init__(message)
        self.template = template
        self.variable = variable


class TemplateSecurityError(TemplateError):
    """A template tried to reach something the sandbox forbids (``__class__``, ``mro``...)."""


class ConfigError(UsageError):
    """A bad option, argument or configuration value."""


class MergeConfigError(ConfigError):
    """A merge configuration asks for something accord does not support, or is malformed."""


class InvalidFilterError(UsageError):
    """A run-store filter used a key or operator that is not allowed."""


class ScriptExhaustedError(UsageError):
    """A scripted test backend was asked for more replies than the test scripted."""

    def __init__(self, message: str, *, agent: str, calls: int):
        super().__init__(message)
        self.agent = agent
        self.calls = calls


# ------------------------------------------------------------------ run errors


class RunError(AccordError):
    """Something failed while running. ``result`` holds the partial run result when known."""


class ProviderError(RunError):
    """A model provider failed. ``status_code`` is the HTTP status when there was one."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status_code: int | None = None,
        attempts: int = 1,
    ):
        super().__init__(message)
        self.provider = provider
        self.status_code = status_code
        self.attempts = attempts


class RateLimitedError(ProviderError):
    """Rate limited: retries ran out, or the provider asked to wait longer than the cap."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ProviderUnavailableError(ProviderError):
    """The provider could not be reached or kept failing (5xx, refused, reset)."""


class ProviderTimeoutError(ProviderError):
    """A request took longer than its timeout, or retries ran past the total deadline."""


class ProviderAuthError(ProviderError):
    """The provider rejected the credentials (401/403). The key is never part of the message."""


class ProviderRequestError(ProviderError):
    """The provider rejected the request itself (400, 404, 422...): fix the request."""


class InvalidProviderResponseError(ProviderError):
    """The provider answered 200 with something that is not a valid completion."""

    def __init__(self, message: str, *, excerpt: str = "", **kw: Any):
        super().__init__(message, **kw)
        self.excerpt = excerpt[:500]


class EmptyCompletionError(ProviderError):
    """The completion had no content."""


class RefusalError(ProviderError):
    """The model refused to answer; ``refusal`` holds its words."""

    def __init__(self, message: str, *, refusal: str = "", **kw: Any):
        super().__init__(message, **kw)
        self.refusal = refusal


class StreamInterruptedError(ProviderError):
    """A stream broke after it started. ``partial_text`` is never stored as a finished message."""

    def __init__(self, message: str, *, partial_text: str = "", chunks: int = 0, **kw: Any):
        super().__init__(message, **kw)
        self.partial_text = partial_text
        self.chunks = chunks


class TruncatedOutputError(ProviderError):
    """The output stopped early (``finish_reason`` "length", or none at all)."""

    def __init__(
        self, message: str, *, partial_text: str = "", finish_reason: str | None = None, **kw: Any
    ):
        super().__init__(message, **kw)
        self.partial_text = partial_text
        self.finish_reason = finish_reason


class OutputValidationError(RunError):
    """A reply never matched the expected payload after the allowed re-asks."""

    def __init__(
        self,
        message: str,
        *,
        agent: str,
        raw: str,
        errors: tuple[str, ...] = (),
        attempts: int = 1,
        raw_outputs: tuple[str, ...] = (),
        reason: str = "invalid",
    ):
        super().__init__(message)
        self.reason = reason
        """``"invalid"`` (not JSON, or not the payload) or ``"too_large"`` (rejected unparsed)."""
        self.agent = agent
        self.raw = raw
        self.errors = errors
        self.attempts = attempts
        self.raw_outputs = raw_outputs or (raw,)


class MessageTypeError(RunError):
    """A node returned a value of a type it did not declare."""

    def __init__(self, message: str, *, node: str, got: str, expected: str):
        super().__init__(message)
        self.node = node
        self.got = got
        self.expected = expected


class StepLimitError(RunError):
    """The run reached its step limit; raise ``max_steps`` or add an exit condition."""

    def __init__(self, message: str, *, limit: int, last_node: str | None):
        super().__init__(message)
        self.limit = limit
        self.last_node = last_node


class NodeError(RunError):
    """A node raised an exception that is not a :class:`RunError` (a ``ValueError`` in a step, a
    failing ``when=`` condition, a backend that failed to load). The original is ``__cause__``;
    ``node`` and ``round`` say where."""

    def __init__(self, message: str, *, node: str, round: int | None = None):
        super().__init__(message)
        self.node = node
        self.round = round


class NodeTimeoutError(RunError):
    """One node's activation took longer than its timeout."""

    def __init__(self, message: str, *, node: str, round: int, timeout: float):
        super().__init__(message)
        self.node = node
        self.round = round
        self.timeout = timeout


class MergeError(RunError):
    """A merge failed a check (before any output, or after writing it)."""


class EnsembleError(RunError):
    """An ensemble method could not produce an answer from what it was given."""


class StoreError(RunError):
    """The run store failed."""


class StoreCorruptError(StoreError):
    """The store file or one of its records is damaged."""

    def __init__(
        self, message: str, *, path: str = "", run_id: str | None = None, record: str | None = None
    ):
        super().__init__(message)
        self.path = path
        self.run_id = run_id
        self.record = record


class StoreVersionError(StoreError):
    """The store was written by a newer version of accord."""

    def __init__(self, message: str, *, found: int, supported: int):
        super().__init__(message)
        self.found = found
        self.supported = supported


class StoreDecodeError(StoreError):
    """A stored record holds a kind accord never writes (never unpickled, never imported)."""


class RunBusyError(StoreError):
    """Another process holds the lease on this run."""

    def __init__(self, message: str, *, run_id: str):
        super().__init__(message)
        self.run_id = run_id


class ToolLoopError(RunError):
    """An agent's tool loop could not finish: the model kept asking for tools past
    ``max_tool_calls``, or too many of its calls failed (``reason``: ``"limit"`` or
    ``"errors"``)."""

    def __init__(self, message: str, *, agent: str, reason: str, calls: int):
        super().__init__(message)
        self.agent = agent
        self.reason = reason
        self.calls = calls
