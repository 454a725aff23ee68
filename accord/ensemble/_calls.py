"""How ensemble methods call models, and how they count what the calls cost.

A method names a model as an :class:`~accord.agents.Agent` (its name, backend, instructions and
sampling options are used; its template and output type are not, since the method writes its own
prompt), a :class:`~accord.backends.base.Backend`, or a ``"provider:model"`` string.
:func:`ask` makes one call and adds it to a :class:`Ledger`.

Inside a graph run (a node or a step calling a method), calls go through the running
activation's :meth:`~accord.runtime.ActivationContext.complete`, so the run's budgets are checked
and its usage counts them; outside a run they go straight to the backend. Caveat: a model with no
backend of its own uses the run's default backend, which exists only inside a run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from accord.backends.base import Backend, ChatMessage, Completion, Request
from accord.errors import ConfigError
from accord.messages import Usage
from accord.runtime import current_context

if TYPE_CHECKING:
    from accord.agents import Agent

__all__ = ["ModelLike", "Model", "Ledger", "as_model", "ask"]

ModelLike = Any
"""An ``Agent``, a ``Backend`` or a ``"provider:model"`` name."""


@dataclass
class Ledger:
    """What one method's model calls cost so far."""

    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.perf_counter)

    @property
    def calls(self) -> int:
        return self.usage.requests

    def add(self, completion: Completion) -> None:
        usage = completion.usage
        if not usage.requests:
            usage = usage + Usage(requests=1)
        self.usage = self.usage + usage

    def elapsed(self) -> float:
        """Seconds since the method started."""
        return time.perf_counter() - self.started


class _Stub:
    """The two fields ``Agent.request`` reads from an activation context."""

    round = 0
    run_id = ""


@dataclass(frozen=True)
class Model:
    """A model as an ensemble method calls it."""

    name: str
    """Sent as ``Request.agent`` (test fakes key their scripts on it)."""
    backend: Backend | None
    """None: the run's default backend (only inside a graph run)."""
    system: str = ""
    """The system prompt (an agent's instructions)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Sampling options for every request (temperature, max_tokens, stop, seed)."""

    def request(self, user: str, *, system: str | None = None, **options: Any) -> Request:
        """A request with this model's system prompt (or ``system``) and one user message."""
        text = self.system if system is None else system
        messages = (ChatMessage(role="system", content=text),) if text else ()
        fields = {**self.options, **options}
        return Request(
            messages=(*messages, ChatMessage(role="user", content=user)),
            agent=self.name,
            **fields,
        )


def _agent_model(agent: Agent) -> Model:
    stub: Any = _Stub()
    template = agent.request(stub, [])
    options = {
        key: getattr(template, key)
        for key in ("temperature", "max_tokens", "stop", "seed")
        if getattr(template, key) not in (None, ())
    }
    return Model(name=agent.name, backend=agent.backend, system=agent.instructions, options=options)


def as_model(model: ModelLike, *, default_name: str, role: str = "model") -> Model:
    """Turn an ``Agent``, a ``Backend`` or a ``"provider:model"`` name into a :class:`Model`.

    Raises:
        ConfigError: ``model`` is none of those (the message names the role it was given for).
    """
    from accord.agents import Agent

    if isinstance(model, Model):
        return model
    if isinstance(model, Agent):
        return _agent_model(model)
    if isinstance(model, str):
        from accord.backends import backend as resolve

        return Model(name=default_name, backend=resolve(model))
    if isinstance(model, Backend):
        return Model(name=default_name, backend=model)
    raise ConfigError(
        f"the {role} must be an accord.Agent, a backend or a 'provider:model' name, not "
        f"{type(model).__name__}."
    )


async def ask(
    model: Model, request: Request, ledger: Ledger, *, through_run: bool = True
) -> Completion:
    """Make one model call and add its usage to ``ledger``.

    Args:
        model: who answers.
        request: what to send.
        ledger: where the cost goes.
        through_run: inside a graph run, go through the activation (budgets, run usage). A
            method used as a backend passes False: the agent that called it counts the total.

    Raises:
        ConfigError: the model has no backend and there is no run to give a default.
    """
    ctx = current_context() if through_run else None
    if ctx is not None:
        completion = await ctx.complete(request, model.backend)
    else:
        if model.backend is None:
            raise ConfigError(
                f"model {model.name!r} has no backend, and there is no graph run to lend it the "
                "default one. Give it a backend (Agent(..., backend=...)) or pass a backend."
            )
        completion = await model.backend.complete(request)
    ledger.add(completion)
    return completion
