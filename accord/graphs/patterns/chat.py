"""Group chats in which one agent speaks at a time: in turn (``round_robin``) or chosen by a
selector (``selector_chat``), in the style of AutoGen's RoundRobinGroupChat and SelectorGroupChat.

A manager node holds the conversation: after each turn it picks the next speaker and sends it the
whole conversation so far, so every speaker sees every earlier turn. The chat ends after
``max_turns`` turns, or when ``stop_when`` holds for a message. The output is the last turn.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from accord._log import get_logger
from accord.agents import Agent, Step
from accord.backends.base import ChatMessage, Request
from accord.errors import ConfigError
from accord.graphs._graph import DEFAULT_MAX_STEPS, Graph
from accord.graphs.patterns._common import check_agents
from accord.messages import Message, Payload
from accord.runtime import ActivationContext, Join, Node, NodeOutput

__all__ = ["round_robin", "selector_chat"]

log = get_logger(__name__)

Selector = Callable[[list[Message], list[str]], str | Awaitable[str]]
"""A function of (conversation so far, speaker names) returning the next speaker's name."""


class ChatManager:
    """Keeps the conversation and routes each turn to the next speaker (``metadata["next"]``)."""

    join: Join = "any"
    accepts: tuple[type[Payload], ...] | None = None
    produces: type[Payload] | None = None
    timeout: float | None = None

    def __init__(
        self,
        name: str,
        speakers: Sequence[str],
        max_turns: int,
        selector: Selector | Agent | None,
        stop_when: Callable[[Message], bool] | None,
    ) -> None:
        self.name = name
        self.speakers = list(speakers)
        self.max_turns = max_turns
        self.selector = selector
        self.stop_when = stop_when

    def _conversation(self, ctx: ActivationContext) -> list[Message]:
        turns = [out for inputs, _ in ctx.history for out in inputs if out.sender != "task"]
        return [*turns, *(m for m in ctx.inputs if m.sender != "task")]

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        turns = self._conversation(ctx)
        text = "\n\n".join(f"[{m.sender}]\n{m.text}" for m in turns)
        if len(turns) >= self.max_turns or (
            turns and self.stop_when is not None and self.stop_when(turns[-1])
        ):
            return NodeOutput(text=text, metadata={"next": ""})
        speaker = await self._next(ctx, turns)
        return NodeOutput(text=text or ctx.task, metadata={"next": speaker})

    async def _next(self, ctx: ActivationContext, turns: list[Message]) -> str:
        in_turn = self.speakers[len(turns) % len(self.speakers)]
        if self.selector is None:
            return in_turn
        if isinstance(self.selector, Agent):
            return await self._ask(ctx, self.selector, turns, in_turn)
        chosen: Any = await Step.invoke(self.selector, turns, list(self.speakers))
        if chosen not in self.speakers:
            raise ConfigError(
                f"selector_chat(): the selector returned {chosen!r}, which is not a speaker "
                f"({', '.join(self.speakers)}). Return one of the speaker names."
            )
        return str(chosen)

    async def _ask(
        self, ctx: ActivationContext, agent: Agent, turns: list[Message], fallback: str
    ) -> str:
        history = "\n\n".join(f"[{m.sender}]\n{m.text}" for m in turns) or "(no turns yet)"
        prompt = (
            f"Task:\n{ctx.task}\n\nConversation so far:\n{history}\n\nWho should speak next? "
            f"Reply with exactly one name from: {', '.join(self.speakers)}."
        )
        messages = (
            [ChatMessage(role="system", content=agent.instructions)] if agent.instructions else []
        )
        messages.append(ChatMessage(role="user", content=prompt))
        request = Request(
            messages=tuple(messages),
            agent=agent.name,
            round=ctx.round,
            run_id=ctx.run_id,
            max_tokens=16,
        )
        reply = (await ctx.complete(request, agent.backend)).text
        for name in sorted(self.speakers, key=len, reverse=True):
            if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", reply):
                return name
        log.warning("selector_reply_invalid", reply=reply[:200], fallback=fallback)
        return fallback


def _addressed_to(name: str) -> Callable[[Message], bool]:
    def check(m: Message) -> bool:
        return m.metadata.get("next") == name

    return check


def _chat_graph(name: str, agents: Sequence[Node], manager: ChatManager) -> Graph:
    # the manager before each turn and once more to stop: 2 activations a turn, plus one
    g = Graph(name, max_steps=max(DEFAULT_MAX_STEPS, 2 * manager.max_turns + 2))
    g.add(manager, *agents)
    for agent in agents:
        g.connect(manager, agent, when=_addressed_to(agent.name))
        g.connect(agent, manager)
    g.set_entry(manager)
    g.set_exit(*(a.name for a in agents))
    return g


def round_robin(
    agents: Sequence[Node],
    max_turns: int,
    *,
    stop_when: Callable[[Message], bool] | None = None,
    name: str = "round_robin",
) -> Graph:
    """Agents speak in turn, each seeing the whole conversation, for ``max_turns`` turns.

    Example::

        g = accord.round_robin([accord.Agent("writer"), accord.Agent("editor")], max_turns=4)
    """
    speakers = check_agents("round_robin", "agents", agents)
    if max_turns < 1:
        raise ConfigError(f"round_robin(): max_turns must be 1 or more, not {max_turns}.")
    manager = ChatManager("manager", [a.name for a in speakers], max_turns, None, stop_when)
    return _chat_graph(name, speakers, manager)


def selector_chat(
    agents: Sequence[Node],
    selector: Selector | Agent,
    max_turns: int = 10,
    *,
    stop_when: Callable[[Message], bool] | None = None,
    name: str = "selector_chat",
) -> Graph:
    """One agent speaks at a time, chosen after each turn by ``selector``.

    Args:
        selector: a function ``(turns, speaker_names) -> name`` (may be async), or an agent
            asked to name the next speaker (an unusable reply falls back to the next in turn,
            with a warning).
    """
    speakers = check_agents("selector_chat", "agents", agents)
    if max_turns < 1:
        raise ConfigError(f"selector_chat(): max_turns must be 1 or more, not {max_turns}.")
    manager = ChatManager("manager", [a.name for a in speakers], max_turns, selector, stop_when)
    return _chat_graph(name, speakers, manager)
