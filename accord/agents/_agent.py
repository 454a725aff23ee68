"""Agent: one LLM-backed node of a graph.

An agent renders its template with the task and the messages it received, asks its backend, and
(when ``output`` is a payload type) parses and validates the reply, re-asking with the validation
error up to ``reasks`` times before raising :class:`~accord.errors.OutputValidationError`.

Caveat: with ``memory=True`` (the default) an agent that runs again in a loop sees its own earlier
prompts and replies of this run, rebuilt from the run's messages, so a resumed run sends exactly
the prompts an uninterrupted one would. Memory belongs to the node, not the agent: two nodes
wrapping one agent (``SampleNode(agent, name=...)``) each see only their own earlier rounds.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ValidationError

from accord._fast import construct
from accord.backends.base import Backend, ChatMessage, Request
from accord.errors import ConfigError, OutputValidationError, TruncatedOutputError
from accord.messages import Message, Payload
from accord.prompts import BUILTIN_TEMPLATES, Fenced, Template, neutralise
from accord.runtime import ActivationContext, Join, NodeOutput
from accord.runtime.result import RunResult

if TYPE_CHECKING:
    from accord.backends.base import Completion
    from accord.tools import Tool

__all__ = ["Agent", "parse_payload", "validate_reply", "format_inputs"]

MAX_OUTPUT_CHARS = 1_000_000
"""Replies longer than this are rejected before parsing (a runaway generation, not an answer)."""

_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n(.*?)\n?```\s*$", re.DOTALL)


MAX_JSON_DEPTH = 64
"""Replies whose JSON nests deeper than this are invalid (re-asked), never a ``RecursionError``."""


def _too_deep(data: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``data`` nests lists and objects more than ``limit`` levels (no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


_TOO_DEEP = (
    f"the reply's JSON is nested more than {MAX_JSON_DEPTH} levels deep; reply with one flat "
    "JSON object"
)


def _loads(text: str) -> Any:
    """``json.loads``; JSON nested past the interpreter's limit is a ``ValueError``."""
    try:
        # strict=False: a grammar-constrained reply may hold raw newlines or tabs inside strings
        # (llama.cpp's JSON grammar allows them), which strict JSON parsing refuses.
        return json.loads(text, strict=False)
    except RecursionError:
        raise ValueError(_TOO_DEEP) from None


def parse_payload(raw: str, output: type[Payload]) -> Payload:
    """Parse a model reply into ``output``: plain JSON, fenced JSON, or the outermost ``{...}``.

    JSON nested more than :data:`MAX_JSON_DEPTH` levels is refused like any other invalid reply
    (never a ``RecursionError``); a JSON value that is not an object goes to ``output``'s single
    field when it has one (see :meth:`~accord.messages.Payload.from_reply`).

    Raises:
        ValueError: the reply is not JSON or does not validate (the message says why).
    """
    if len(raw) > MAX_OUTPUT_CHARS:
        raise ValueError(
            f"the reply is {len(raw)} characters long, over the limit of {MAX_OUTPUT_CHARS}"
        )
    text = raw.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        data = _loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise ValueError("the reply is not a JSON object") from None
        try:
            data = _loads(text[start : end + 1])
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"the reply is not valid JSON ({exc.msg} at character {exc.pos})"
            ) from None
    if _too_deep(data):
        raise ValueError(_TOO_DEEP)
    return validate_reply(data, output)


def validate_reply(data: Any, output: type[Payload]) -> Payload:
    """Validate parsed JSON as ``output`` with :meth:`~accord.messages.Payload.from_reply` (which
    normalises numbers for text, ``"true"`` for booleans, a bare value for a one-field payload).

    Raises:
        ValueError: the data does not fit ``output`` (the message says where and why, for a
            re-ask).
    """
    try:
        return output.from_reply(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"the JSON does not match {output.__name__}: {problems}") from None
    except RecursionError:
        raise ValueError(
            f"the reply's JSON is nested too deeply to validate as {output.__name__}"
        ) from None


def _chat(role: str, content: str) -> ChatMessage:
    return construct(
        ChatMessage, role=role, content=content, tool_calls=(), tool_call_id=None, name=None
    )


def format_inputs(messages: list[Message]) -> Fenced:
    """Other agents' messages as a prompt shows them: each between ``<message>`` markers, so a
    model can tell data from instructions. Each text is neutralised first
    (:func:`~accord.prompts.neutralise`), so a forged ``</message>`` or ``<task>`` inside it
    stays visible as text but cannot close or open a block."""
    return Fenced(
        "\n".join(
            # tail=False: each text is followed by "\n</message>", so it cannot end in a tag.
            f'<message from="{m.sender}" round="{m.round}">\n{neutralise(m.text, tail=False)}'
            "\n</message>"
            for m in messages
        )
    )


def _template_message(m: Message) -> dict[str, Any]:
    """One input message as templates see it (``messages``): its sender, text and round, and its
    payload's kind and fields (None for a text message)."""
    payload = m.payload
    return {
        "sender": m.sender,
        "text": m.text,
        "round": m.round,
        "kind": payload.kind if payload is not None else None,
        "payload": payload.model_dump() if payload is not None else None,
    }


def _check_top_p(name: str, top_p: float | None) -> None:
    number = isinstance(top_p, int | float) and not isinstance(top_p, bool)
    if top_p is not None and not (number and 0 < top_p <= 1):
        raise ConfigError(
            f"agent {name!r}: top_p must be a number above 0 and at most 1 (nucleus sampling "
            f"keeps the most likely tokens up to that probability mass), not {top_p!r}. Pass "
            "for example top_p=0.9, or None for the backend's default."
        )


def _template(template: str | Path | Template | None, default: str) -> Template:
    if template is None:
        return Template.builtin(default)
    if isinstance(template, Template):
        return template
    if isinstance(template, Path):
        return Template.from_file(template)
    if template in BUILTIN_TEMPLATES:
        return Template.builtin(template)
    return Template.from_string(template, name="<agent template>")


def _tools(name: str, tools: Sequence[Any], max_calls: int, max_errors: int) -> dict[str, Tool]:
    if not tools:
        return {}
    from accord.tools import as_tool

    if max_calls < 1 or max_errors < 0:
        raise ConfigError(
            f"agent {name!r}: max_tool_calls must be 1 or more and max_tool_errors 0 or more."
        )
    found: dict[str, Tool] = {}
    for item in tools:
        tool = as_tool(item)
        if tool.name in found:
            raise ConfigError(
                f"agent {name!r}: two tools are named {tool.name!r}; give one another name "
                "(accord.Tool(fn, name=...))."
            )
        found[tool.name] = tool
    return found


class Agent:
    """An LLM-backed node.

    Args:
        name: unique node name in its graph.
        backend: a backend, a ``"provider:model"`` name (resolved on first use), or None to use
            the run's default (``graph.run(task, backend=...)``).
        instructions: the system prompt.
        template: the user-prompt template: a built-in name (``"solver"``), template source
            written in your program, a ``Path`` to a file, or a :class:`~accord.prompts.Template`.
            Variables: ``task``, ``messages`` (the input messages, each with ``sender``,
            ``text``, ``round``, ``kind`` (the payload's kind, such as ``"Verdict"``, or None for
            text) and ``payload`` (the payload's fields as a dict, or None for text), so a
            template can write ``{% for r in m.payload.reasons %}``), ``inputs`` (those
            messages formatted between ``<message>`` markers), ``round``, ``name``, plus
            ``variables``.
        output: ``str`` for plain text, or a :class:`~accord.messages.Payload` subclass: its JSON
            schema goes to the backend and the reply is parsed and validated.
        memory: see earlier rounds of this run (own prompts and replies) when run again.
        join: ``"all"`` (one message from each predecessor) or ``"any"`` (run per message, in
            arrival order, so its rounds follow timing).
        reasks: re-asks allowed when the reply does not validate (a structured reply cut at
            the token limit counts as one that does not).
        timeout: seconds one activation may take.
        temperature, top_p, max_tokens, stop, seed: sampling options for every call (None: the
            backend's default). ``top_p`` (nucleus sampling) must be above 0 and at most 1.
        variables: extra template variables.
        tools: functions (sync or async) or :class:`~accord.tools.Tool` objects the model may
            call; see :mod:`accord.agents._tools` for the loop.
        max_tool_calls: tool calls allowed in one activation (then the model must answer).
        max_tool_errors: failed tool calls (invalid arguments, exceptions, timeouts) allowed in
            one activation before it fails with ``ToolLoopError``.
        tool_choice: ``None``/``"auto"`` (the model decides), ``"required"``, or a tool's name
            to force that tool on the first call.

    Example::

        critic = accord.Agent("critic", "openai:gpt-4o-mini", output=accord.Critique,
                              instructions="You are a strict reviewer.")
    """

    default_template: ClassVar[str] = "agent"
    default_output: ClassVar[type[Payload] | type[str]] = str
    default_instructions: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        backend: Backend | str | None = None,
        *,
        instructions: str | None = None,
        template: str | Path | Template | None = None,
        output: type[Payload] | type[str] | None = None,
        memory: bool = True,
        join: Join = "all",
        reasks: int = 2,
        timeout: float | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        stop: tuple[str, ...] = (),
        seed: int | None = None,
        variables: dict[str, Any] | None = None,
        tools: Sequence[Tool | Callable[..., Any]] = (),
        max_tool_calls: int = 10,
        max_tool_errors: int = 3,
        tool_choice: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name or name == "task":
            raise ConfigError(
                f"agent name {name!r} is not usable: give a non-empty string other than 'task'."
            )
        out = self.default_output if output is None else output
        if out is not str and not (isinstance(out, type) and issubclass(out, Payload)):
            raise ConfigError(
                f"agent {name!r}: output must be str or a subclass of accord.Payload, not {out!r}."
            )
        if join not in ("all", "any"):
            raise ConfigError(f"agent {name!r}: join must be 'all' or 'any', not {join!r}.")
        if reasks < 0:
            raise ConfigError(f"agent {name!r}: reasks must be 0 or more, not {reasks}.")
        _check_top_p(name, top_p)
        self.name = name
        self._backend = backend
        self.instructions = self.default_instructions if instructions is None else instructions
        self.template = _template(template, self.default_template)
        self.output: type[Payload] | type[str] = out
        self.memory = memory
        self.join: Join = join
        self.reasks = reasks
        self.timeout = timeout
        self.variables = dict(variables or {})
        self.tools = _tools(name, tools, max_tool_calls, max_tool_errors)
        self.max_tool_calls = max_tool_calls
        self.max_tool_errors = max_tool_errors
        self.tool_choice = tool_choice
        self._options: dict[str, Any] = {
            "temperature": temperature,
            "top_p": top_p,
            "max_tokens": max_tokens,
            "stop": tuple(stop),
            "seed": seed,
        }
        self.accepts: tuple[type[Payload], ...] | None = None
        self.produces: type[Payload] | None = out if out is not str else None  # type: ignore[assignment]
        system = self._system_prompt()
        self._system = (ChatMessage(role="system", content=system),) if system else ()
        schema = self.produces.model_json_schema() if self.produces is not None else None
        # Validated once here; each call then builds its Request without re-validating.
        self._request_fields = Request(
            messages=(),
            response_schema=schema,
            schema_name=self.produces.__name__ if self.produces is not None else None,
            **self._options,
        ).__dict__

    @property
    def backend(self) -> Backend | None:
        """The agent's own backend (resolved from its name on first use), or None."""
        if isinstance(self._backend, str):
            from accord.backends import backend as resolve

            self._backend = resolve(self._backend)
        return self._backend

    def _system_prompt(self) -> str:
        if self.produces is None:
            return self.instructions
        schema = json.dumps(self.produces.model_json_schema(), separators=(",", ":"))
        fmt = (
            f"Reply with one JSON object that matches this JSON schema, and nothing else:\n{schema}"
        )
        return f"{self.instructions}\n\n{fmt}" if self.instructions else fmt

    def prompt(self, task: str, inputs: tuple[Message, ...], round: int) -> str:
        """The user prompt for one activation (the task message itself is not shown twice)."""
        shown = [m for m in inputs if m.sender != "task"]
        used = self.template.variables
        variables: dict[str, Any] = {"task": task, "round": round, "name": self.name}
        if used is None or "inputs" in used:
            variables["inputs"] = format_inputs(shown)
        if used is None or "messages" in used:
            variables["messages"] = [_template_message(m) for m in shown]
        if self.variables:
            variables.update(self.variables)
        return self.template.render(**variables)

    def _conversation(self, ctx: ActivationContext) -> list[ChatMessage]:
        chat: list[ChatMessage] = list(self._system)
        memo = ctx.memo
        # Keyed by the node (its history is the node's) and by this agent (which renders it):
        # two nodes wrapping one agent, or one node calling two agents, never share a prompt.
        node = ctx.node
        if self.memory:
            for i, (inputs, output) in enumerate(ctx.history):
                earlier = memo.get((node, self.name, i))
                if earlier is None:
                    earlier = _chat("user", self.prompt(ctx.task, inputs, i))
                chat.append(earlier)
                chat.append(_chat("assistant", output.text))
        current = _chat("user", self.prompt(ctx.task, ctx.inputs, ctx.round))
        if self.memory:  # only an agent with memory reads its earlier prompts again
            memo[(node, self.name, ctx.round)] = current
        chat.append(current)
        return chat

    def request(self, ctx: ActivationContext, chat: list[ChatMessage]) -> Request:
        """The request for one call of this activation."""
        return construct(
            Request,
            **{
                **self._request_fields,
                "messages": tuple(chat),
                "agent": self.name,
                "round": ctx.round,
                "run_id": ctx.run_id,
            },
        )

    async def _ask(
        self, ctx: ActivationContext, chat: list[ChatMessage], backend: Backend | None
    ) -> tuple[Completion, list[ChatMessage]]:
        if not self.tools:
            return await ctx.complete(self.request(ctx, chat), backend), chat
        from accord.agents._tools import complete_with_tools

        return await complete_with_tools(self, ctx, chat, backend)

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        chat = self._conversation(ctx)
        backend = self.backend
        if self.produces is None:
            if not self.tools:
                completion = await ctx.complete(self.request(ctx, chat), backend)
            else:
                completion, chat = await self._ask(ctx, chat, backend)
            return NodeOutput(text=completion.text)
        raws: list[str] = []
        errors: list[str] = []
        for _attempt in range(self.reasks + 1):
            try:
                completion, chat = await self._ask(ctx, chat, backend)
            except TruncatedOutputError as exc:
                # A structured reply cut at the token limit is an invalid reply like any other:
                # re-asked (shorter), within the same allowance.
                raws.append(exc.partial_text)
                errors.append("the reply was cut at the token limit before the JSON ended")
                chat = [
                    *chat,
                    _chat("assistant", exc.partial_text[:4000]),
                    _chat(
                        "user",
                        "Your reply was cut off at the token limit before the JSON object was "
                        "complete. Reply again with one short JSON object that matches the schema.",
                    ),
                ]
                continue
            raw = completion.text
            raws.append(raw)
            if len(raw) > MAX_OUTPUT_CHARS:
                raise OutputValidationError(
                    f"agent {self.name!r} replied with {len(raw)} characters, over the limit of "
                    f"{MAX_OUTPUT_CHARS} for a {self.produces.__name__}; a runaway generation is not "
                    "re-asked. Lower max_tokens or fix the instructions.",
                    agent=self.name,
                    raw=raw[:4000],
                    errors=("too_large",),
                    attempts=len(raws),
                    reason="too_large",
                )
            try:
                payload = parse_payload(raw, self.produces)
            except ValueError as exc:
                errors.append(str(exc))
                chat = [
                    *chat,
                    _chat("assistant", raw[:4000]),
                    _chat(
                        "user",
                        f"Your reply could not be used: {exc}. Reply again with only one JSON object "
                        "that matches the schema.",
                    ),
                ]
                continue
            return NodeOutput(text=payload.as_text(), payload=payload)
        raise OutputValidationError(
            f"agent {self.name!r} did not produce a valid {self.produces.__name__} in "
            f"{len(raws)} attempts; last problem: {errors[-1]}. Check its instructions, use a "
            "backend with structured output, or raise reasks.",
            agent=self.name,
            raw=raws[-1][:MAX_OUTPUT_CHARS],
            errors=tuple(errors),
            attempts=len(raws),
            raw_outputs=tuple(r[:MAX_OUTPUT_CHARS] for r in raws),
            reason="invalid",
        )

    async def run(
        self, task: str, backend: Backend | str | None = None, **options: Any
    ) -> RunResult:
        """Run this agent alone on ``task``: a one-node graph underneath, same result type.

        Args:
            task: the task text.
            backend: the backend (or ``"provider:model"`` name) when the agent has none.
            **options: passed to :meth:`accord.Graph.run` (``store=``, ``durability=``...).

        Example::

            result = await accord.Agent("solver", template="{{ task }}").run("123+456=",
                                                                             backend=model)
        """
        from accord.graphs import Graph

        graph = Graph(self.name).add(self)
        graph.set_entry(self.name)
        graph.set_exit(self.name)
        return await graph.run(task, backend, **options)

    def clone(self, name: str, **changes: Any) -> Agent:
        """A copy of this agent under another name (patterns use it to unroll layers and
        samples). ``changes`` may set ``template``, ``instructions``, ``temperature``, ``top_p``,
        ``seed``, ``max_tokens``."""
        twin = copy.copy(self)
        twin.name = name
        twin.variables = dict(self.variables)
        twin._options = dict(self._options)
        if "template" in changes:
            twin.template = _template(changes.pop("template"), self.default_template)
        if "instructions" in changes:
            twin.instructions = changes.pop("instructions")
            system = twin._system_prompt()
            twin._system = (ChatMessage(role="system", content=system),) if system else ()
        if "top_p" in changes:
            _check_top_p(name, changes["top_p"])
        for key in ("temperature", "top_p", "seed", "max_tokens"):
            if key in changes:
                twin._options[key] = changes.pop(key)
        if changes:
            raise ConfigError(f"clone() cannot change {', '.join(sorted(changes))}.")
        twin._request_fields = Request(
            **{**self._request_fields, **twin._options, "messages": ()}
        ).__dict__
        return twin

    def __repr__(self) -> str:
        out = self.produces.__name__ if self.produces is not None else "str"
        return f"{type(self).__name__}({self.name!r}, output={out})"
