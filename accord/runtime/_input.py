"""Asking a person from inside a run: questions, answers, and how a run waits for them.

``await ctx.ask(question, output=T)`` inside a node returns a ``T`` that a person gave. Each ask
has a deterministic id, ``node/round/qN`` (the N-th ask of that activation), so when a paused run
is resumed the activation that asked runs again (from the store's cache for everything else) and
this time ``ask`` returns the recorded answer. Where an answer comes from, in order:

1. an answer already recorded for that id (given to ``graph.resume(answers=...)`` or with
   ``accord runs answer``; a timeout's default counts too);
2. the run's ``ask=`` handler, when the process has one (``accord run`` on a terminal prompts),
   waited on for at most the question's timeout;
3. a question with a ``timeout`` keeps the process waiting, reading the store for an answer,
   until it ends: then ``on_timeout`` applies (a default answer, or ``"stop"``: the run stops);
4. otherwise the question is recorded and the activation *blocks*: other branches that do not
   depend on it keep running until they block too, then the run ends with status ``"waiting"``
   and its pending :class:`Question` list.

Caveat: a timeout counts from when the question was first asked (recorded in the store). A paused
run whose question has a timeout (its process was stopped while waiting) applies ``on_timeout``
when it is resumed after that moment without an answer.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from accord.errors import ConfigError, UsageError
from accord.messages import Payload

__all__ = [
    "Question",
    "Approval",
    "AnswerError",
    "InputGate",
    "AskHandler",
    "question_id",
    "schema_of",
    "check_answer",
    "STOP",
    "HANDLER",
    "NO_ANSWER",
    "parse_value",
    "terminal_asker",
    "Blocked",
]

STOP = "stop"
"""``on_timeout="stop"``: a question that times out stops the run."""


class Question(BaseModel):
    """A question a run asked a person, pending or answered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    """``node/round/qN``: answer it with ``graph.resume(run_id, answers={id: value})``."""
    run_id: str
    node: str
    round: int
    question: str
    answer_schema: dict[str, Any]
    """The JSON schema an answer must satisfy."""
    asked_at: float
    timeout: float | None = None
    """Seconds the run waits for an answer (None: as long as it takes)."""


class Approval(Payload):
    """A person's yes or no, with a reason: ``await ctx.ask("Run rm -rf?", output=Approval)``."""

    approved: bool
    reason: str = ""

    def as_text(self) -> str:
        head = "Approved." if self.approved else "Not approved."
        return f"{head} {self.reason}" if self.reason else head


class AnswerError(UsageError):
    """An answer does not fit its question's schema, or names no pending question."""


AskHandler = Callable[[Question], Awaitable[Any]]
"""Asks a person in this process (a terminal prompt); returns the raw answer (JSON-able)."""


@runtime_checkable
class InputGate(Protocol):
    """Where questions and answers are kept durable (the run store's recorder)."""

    def recorded(self, question_id: str) -> tuple[bool, Any]:
        """(True, answer) when an answer to ``question_id`` is recorded, else (False, None)."""
        ...

    def poll(self, question_id: str) -> tuple[bool, Any]:
        """As :meth:`recorded`, reading the store again (an answer given by another process)."""
        ...

    def asked_at(self, question: Question) -> float:
        """Record ``question`` (once); returns when it was first asked."""
        ...

    def answered(self, question_id: str, value: Any) -> None:
        """Record an answer given in this process."""
        ...


HANDLER: contextvars.ContextVar[AskHandler | None] = contextvars.ContextVar(
    "accord_ask_handler", default=None
)
"""The ask handler of runs started in this context (``accord run`` sets one on a terminal)."""


def to_json(value: Any) -> Any:
    """``value`` as JSON-able data (a model as its fields)."""
    return to_jsonable_python(value)


def question_id(node: str, round: int, index: int, key: str | None = None) -> str:
    """``node/round/qN`` for the N-th ask of an activation, or ``node/round/KEY`` with a key."""
    if key is not None:
        if not key or any(c.isspace() for c in key):
            raise ConfigError(f"ask(key={key!r}): a key must be non-empty text without spaces.")
        return f"{node}/{round}/{key}"
    return f"{node}/{round}/q{index}"


def schema_of(output: Any) -> dict[str, Any]:
    """The JSON schema of answers of type ``output`` (a pydantic model or a plain type).

    Raises:
        ConfigError: ``output`` has no JSON schema.
    """
    try:
        if isinstance(output, type) and issubclass(output, BaseModel):
            return output.model_json_schema()
        return TypeAdapter(output).json_schema()
    except Exception as exc:
        raise ConfigError(
            f"ask(output={output!r}): answers need a type with a JSON schema (a Payload "
            f"subclass, str, int, float, bool, or a Literal): {exc}"
        ) from exc


def parse_answer(output: Any, value: Any, qid: str) -> Any:
    """``value`` as an ``output`` (validated by pydantic).

    Raises:
        AnswerError: it does not fit.
    """
    try:
        if isinstance(output, type) and issubclass(output, BaseModel):
            if isinstance(value, output):
                return value
            return output.model_validate(value)
        return TypeAdapter(output).validate_python(value)
    except ValidationError as exc:
        raise AnswerError(
            f"the answer to question {qid!r} does not fit its type: {exc.errors()[0]['msg']}"
        ) from exc


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list, tuple),
    "null": (type(None),),
}


def check_answer(schema: dict[str, Any], value: Any, qid: str) -> None:
    """Check a JSON value against a question's schema (the subset pydantic writes: types,
    properties, required, enum/const, items, anyOf/oneOf/allOf, $ref to $defs).

    Raises:
        AnswerError: the value does not fit, saying where and what was expected.
    """
    problem = _problem(schema, value, schema.get("$defs", {}), "answer")
    if problem:
        raise AnswerError(
            f"the answer to question {qid!r} is refused: {problem}. Expected a value of this "
            f"JSON schema: {_short(schema)}. The run stays waiting; answer again."
        )


def _short(schema: dict[str, Any]) -> str:
    text = str({k: v for k, v in schema.items() if k not in ("$defs", "description")})
    return text if len(text) < 300 else text[:297] + "..."


def _problem(schema: Any, value: Any, defs: dict[str, Any], where: str) -> str | None:
    if not isinstance(schema, dict):
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _problem(defs.get(ref.rsplit("/", 1)[-1], {}), value, defs, where)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if options:
            if all(_problem(o, value, defs, where) for o in options):
                return f"{where} matches none of the allowed forms"
            return None
    for part in schema.get("allOf", ()):
        found = _problem(part, value, defs, where)
        if found:
            return found
    if "const" in schema and value != schema["const"]:
        return f"{where} must be {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} must be one of {schema['enum']!r}, not {value!r}"
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    if kinds:
        ok = any(
            isinstance(value, _TYPES.get(k, (object,)))
            and not (k in ("integer", "number") and isinstance(value, bool))
            for k in kinds
        )
        if not ok:
            return f"{where} must be of type {' or '.join(kinds)}, not {type(value).__name__}"
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                return f"{where} lacks the required field {name!r}"
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                return f"{where} has unknown fields {extra}"
        for name, sub in props.items():
            if name in value:
                found = _problem(sub, value[name], defs, f"{where}.{name}")
                if found:
                    return found
    if isinstance(value, list | tuple) and "items" in schema:
        for i, item in enumerate(value):
            found = _problem(schema["items"], item, defs, f"{where}[{i}]")
            if found:
                return found
    return None


def parse_value(text: str, schema: dict[str, Any]) -> Any:
    """An answer typed as text: JSON (``true``, ``42``, ``{"approved": true}``), or the text
    itself when it is not JSON or the question wants a string."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if schema.get("type") == "string" and not isinstance(value, str):
        return text
    return value


NO_ANSWER = object()
"""What an ask handler returns when the person gave no answer (end of input): the run pauses."""


def terminal_asker(
    read: Callable[[str], str] = input, write: Callable[[str], None] = print
) -> AskHandler:
    """An ask handler that prompts on a terminal until the answer fits (``accord run`` uses it).

    ``read`` runs in a worker thread; end of input (EOF) leaves the question pending.
    """
    from accord._terminal import plain

    async def ask(q: Question) -> Any:
        write(f"\n? {plain(q.node)} asks ({q.id}):\n{plain(q.question)}")
        write(f"  answer as JSON of schema {_short(q.answer_schema)}")
        while True:
            try:
                text = await asyncio.to_thread(read, "> ")
            except EOFError:
                write("  (no answer: the run will wait; answer later with `accord runs answer`)")
                return NO_ANSWER
            value = parse_value(text.strip(), q.answer_schema)
            try:
                check_answer(q.answer_schema, value, q.id)
            except AnswerError as exc:
                write(f"  {exc}")
                continue
            return value

    return ask


class Blocked(BaseException):
    """Raised by ``ask`` when no answer is there: the activation waits and the scheduler takes
    it (never seen by users). A ``BaseException``, like ``CancelledError``, so that code which
    catches ``Exception`` around an ``ask`` (a tool loop, a retry) lets it through."""


OnTimeout = Any | Literal["stop"]


async def wait_for_answer(
    gate: InputGate,
    question: Question,
    handler: AskHandler | None,
    deadline: float | None,
) -> tuple[bool, Any]:
    """Wait for an answer from ``handler`` or, with a deadline, the store; (False, None) when the
    deadline passed or there is no way to wait."""
    remaining = None if deadline is None else deadline - time.time()
    if handler is not None:
        if remaining is not None and remaining <= 0:
            return False, None
        try:
            async with asyncio.timeout(remaining):
                value = await handler(question)
        except TimeoutError:
            return False, None
        if value is not NO_ANSWER:
            return True, value
    if deadline is None:
        return False, None
    while True:
        found = gate.poll(question.id)
        if found[0]:
            return found
        remaining = deadline - time.time()
        if remaining <= 0:
            return False, None
        await asyncio.sleep(min(0.2, remaining))
