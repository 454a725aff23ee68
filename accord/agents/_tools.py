"""The tool loop of one agent activation.

The agent asks its model with the tools' schemas; while the reply asks for tool calls, accord
validates each call's arguments, runs the calls of one reply concurrently (an
``asyncio.TaskGroup``), appends the results to the conversation and asks again, until the model
answers without a call. Invalid arguments, unknown tools, exceptions and timeouts go back to the
model as error results it can correct; more than ``max_tool_errors`` failed calls in one
activation, or a model that keeps calling after ``max_tool_calls`` calls (it is asked once more
with tools switched off), end the activation with :class:`~accord.errors.ToolLoopError`.

Every call and result is part of the activation's recorded model calls (the assistant turn with
its ``tool_calls`` and the ``tool`` turns that answer them), and is emitted as ``tool_call`` /
``tool_result`` events. A backend that answers from a recording (``ReplayBackend``) also gives
the recorded tool results: the tools are not run again.

Caveat: results are recorded with the activation, when it finishes. A process that dies while an
activation is in its tool loop re-runs that activation on resume, and its tools with it, except
``side_effects=True`` tools: their calls go through an intent journal
(:mod:`accord.tools._journal`) and run at most once (unless also ``idempotent``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from accord._fast import construct
from accord.backends.base import Backend, ChatMessage, Completion, ToolCall
from accord.errors import ToolLoopError
from accord.runtime import ActivationContext, Approval
from accord.runtime import events as ev
from accord.tools import Journal, Tool, ToolResult, call_key, journal_for

if TYPE_CHECKING:
    from accord.agents._agent import Agent

__all__ = ["complete_with_tools", "run_calls"]

_EVENT_CHARS = 2000


def _observed(ctx: ActivationContext) -> bool:
    """Whether anyone reads this run's tool events (an event sink, or the run store)."""
    run = ctx._run
    return run.sink is not None or run.recorder is not None


def _message(
    role: str,
    content: str,
    *,
    tool_calls: tuple[ToolCall, ...] = (),
    tool_call_id: str | None = None,
    name: str | None = None,
) -> ChatMessage:
    return construct(
        ChatMessage,
        role=role,
        content=content,
        tool_calls=tool_calls,
        tool_call_id=tool_call_id,
        name=name,
    )


async def _run_one(
    ctx: ActivationContext,
    tools: dict[str, Tool],
    call: ToolCall,
    backend: Backend,
    agent: str,
    journal: Journal | None = None,
    key: str = "",
    refused: str | None = None,
) -> ToolResult:
    if _observed(ctx):
        ctx._run.note(
            construct(
                ev.ToolCallEvent,
                run_id=ctx.run_id,
                at=time.time(),
                kind="tool_call",
                node=ctx.node,
                round=ctx.round,
                call_id=call.id,
                tool=call.name,
                arguments=call.arguments[:_EVENT_CHARS],
            ),
        )
    recorded = getattr(backend, "recorded_tool_result", None)
    found = recorded(agent, ctx.round, call.id) if callable(recorded) else None
    tool = tools.get(call.name)
    if found is not None:
        result = ToolResult(call.id, call.name, str(found), None, 0.0, cached=True)
    elif tool is None:
        result = ToolResult(
            call.id,
            call.name,
            f"Error: there is no tool {call.name!r}; the tools are "
            + ", ".join(repr(t) for t in tools)
            + ".",
            "unknown_tool",
        )
    elif refused is None and journal is not None and tool.side_effects:
        result = await _once(journal, key, tool, call)
    elif refused is not None:
        result = ToolResult(call.id, call.name, refused, "refused")
    else:
        result = await tool.invoke(call.arguments, call.id)
    if _observed(ctx):
        ctx._run.note(
            construct(
                ev.ToolResultEvent,
                run_id=ctx.run_id,
                at=time.time(),
                kind="tool_result",
                node=ctx.node,
                round=ctx.round,
                call_id=call.id,
                tool=call.name,
                result=result.content[:_EVENT_CHARS],
                error=result.error,
                duration_s=result.duration_s,
                cached=result.cached,
            ),
        )
    return result


async def _once(journal: Journal, key: str, tool: Tool, call: ToolCall) -> ToolResult:
    """Run a side-effecting call at most once across attempts (see ``accord.tools._journal``)."""
    earlier = journal.lookup(key)
    if earlier is not None and "content" in earlier:
        return ToolResult(
            call.id, call.name, str(earlier["content"]), earlier.get("error"), 0.0, True
        )
    if earlier is not None and not tool.idempotent:
        return ToolResult(
            call.id,
            call.name,
            f"Error: tool {call.name!r} was started with these arguments before the run was "
            "interrupted, and its outcome is unknown; it was not run again because it has side "
            "effects. Check its effect another way before asking for it again.",
            "unknown_outcome",
        )
    await asyncio.to_thread(journal.intent, key)
    result = await tool.invoke(call.arguments, call.id)
    await asyncio.to_thread(journal.done, key, result)
    return result


async def run_calls(
    ctx: ActivationContext,
    tools: dict[str, Tool],
    calls: Sequence[ToolCall],
    backend: Backend,
    agent: str,
    journal: Journal | None = None,
    keys: Sequence[str] = (),
) -> list[ToolResult]:
    """Run one reply's tool calls concurrently; results in the calls' order (never raises for a
    tool's failure). ``journal`` and each call's ``keys`` make side-effecting calls run once."""
    keys = keys or [""] * len(calls)
    refusals = await _approvals(ctx, tools, calls)
    if len(calls) == 1:
        return [await _run_one(ctx, tools, calls[0], backend, agent, journal, keys[0], refusals[0])]
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(_run_one(ctx, tools, call, backend, agent, journal, key, refused))
            for call, key, refused in zip(calls, keys, refusals, strict=True)
        ]
    return [task.result() for task in tasks]


async def _approvals(
    ctx: ActivationContext, tools: dict[str, Tool], calls: Sequence[ToolCall]
) -> list[str | None]:
    """Ask a person to approve each call of a tool with ``approval=True``; for each call, the
    text the model reads when it was refused (None: approved, or needs no approval).

    Every question of the batch is asked before any call runs, so one pause holds them all;
    a question is keyed by the call (tool and arguments), so an answer stays with the call it
    approved when a resumed activation asks in another order.
    """
    asks: dict[int, Any] = {}
    for i, call in enumerate(calls):
        tool = tools.get(call.name)
        if tool is None or not tool.approval:
            continue
        try:
            shown = json.dumps(json.loads(call.arguments or "{}"), sort_keys=True)
        except ValueError:
            shown = call.arguments
        digest = hashlib.sha256(f"{call.name}:{shown}".encode()).hexdigest()[:16]
        asks[i] = ctx.ask(
            f"Approve the call {call.name}({shown})?", output=Approval, key=f"approve-{digest}"
        )
    out: list[str | None] = [None] * len(calls)
    if not asks:
        return out
    answers = await asyncio.gather(*asks.values(), return_exceptions=True)
    for answer in answers:  # a pause (or any failure) wins over the answers that came
        if isinstance(answer, BaseException):
            raise answer
    for i, answer in zip(asks, answers, strict=True):
        assert isinstance(answer, Approval)
        if not answer.approved:
            why = f": {answer.reason}" if answer.reason else ""
            out[i] = f"Error: a person did not approve this call{why}. Do not call it again."
    return out


def _journal(ctx: ActivationContext, tools: dict[str, Tool]) -> Journal | None:
    """The run's intent journal, when the run is recorded and a tool has side effects."""
    recorder = ctx._run.recorder
    if recorder is None or not any(t.side_effects for t in tools.values()):
        return None
    return journal_for(recorder, ctx.memo, ctx.run_id)


def _with_ids(calls: tuple[ToolCall, ...], round: int, start: int) -> tuple[ToolCall, ...]:
    """Calls without an id get a deterministic one (so a replay finds their results)."""
    if all(call.id for call in calls):
        return calls
    return tuple(
        call if call.id else call.model_copy(update={"id": f"call_{round}_{start + i}"})
        for i, call in enumerate(calls)
    )


async def complete_with_tools(
    agent: Agent,
    ctx: ActivationContext,
    chat: list[ChatMessage],
    backend: Backend | None,
) -> tuple[Completion, list[ChatMessage]]:
    """Ask the model until it answers without tool calls (see module docstring).

    Returns:
        The final completion and the conversation that led to it (tool turns included).

    Raises:
        ToolLoopError: the model kept calling tools past ``max_tool_calls``, or more than
            ``max_tool_errors`` calls failed.
    """
    tools = agent.tools
    specs = tuple(tool.spec for tool in tools.values())
    resolved = ctx.resolve_backend(backend)
    journal = _journal(ctx, tools)
    occurrences: dict[str, int] = {}
    choice = agent.tool_choice
    done = 0
    failures = 0
    last_errors: list[str] = []
    closing = False
    while True:
        base = agent.request(ctx, chat)
        request = base.model_copy(
            update={"tools": specs, "tool_choice": "none" if closing else choice}
        )
        completion = await ctx.complete(request, backend)
        calls = completion.tool_calls
        if not calls:
            return completion, chat
        if closing:
            raise ToolLoopError(
                f"agent {agent.name!r} kept asking for tools after its {agent.max_tool_calls} "
                "tool calls (max_tool_calls) and a request to answer without them. Raise "
                "max_tool_calls or tell the agent when to stop in its instructions.",
                agent=agent.name,
                reason="limit",
                calls=done,
            )
        calls = _with_ids(calls, ctx.round, done)
        chat = [*chat, _message("assistant", completion.text, tool_calls=calls)]
        allowed = calls[: agent.max_tool_calls - done]
        keys: list[str] = []
        if journal is not None:
            for call in allowed:
                base_key = call_key(ctx.node, ctx.round, call.name, call.arguments, 0)
                occurrences[base_key] = n = occurrences.get(base_key, -1) + 1
                keys.append(call_key(ctx.node, ctx.round, call.name, call.arguments, n))
        results = await run_calls(ctx, tools, allowed, resolved, agent.name, journal, keys)
        for call in calls[len(allowed) :]:
            results.append(
                ToolResult(
                    call.id,
                    call.name,
                    "Error: the tool-call limit of this turn is reached; this call was not run. "
                    "Answer with what you have.",
                    "limit",
                )
            )
        done += len(allowed)
        for result in results:
            chat.append(
                _message("tool", result.content, tool_call_id=result.call_id, name=result.name)
            )
            if result.error is not None and result.error != "limit":
                failures += 1
                last_errors.append(result.content)
        if failures > agent.max_tool_errors:
            raise ToolLoopError(
                f"agent {agent.name!r}: {failures} tool calls failed in one activation (more "
                f"than max_tool_errors={agent.max_tool_errors}); last: {last_errors[-1][:500]}",
                agent=agent.name,
                reason="errors",
                calls=done,
            )
        if choice not in (None, "auto", "none"):
            choice = None  # a forced tool is forced once; then the model may answer
        if done >= agent.max_tool_calls:
            closing = True
