"""``accord.Human``: a graph node that asks a person and answers with what they said.

The question is a template (like an agent's prompt, see :mod:`accord.prompts`) rendered with the
node's inputs: ``task``, ``round``, ``name``, ``inputs`` (the input messages between
``<message>`` markers), ``messages`` (a list of ``{sender, text, round}``), ``last`` (the latest
input's text) and ``payload`` (the latest input's payload, or None). The answer is validated as
``output``: a Payload subclass (then the node produces it), or ``str``, ``int``, ``bool``, a
``Literal[...]`` (then the node produces text).

Asking goes through :meth:`~accord.runtime.ActivationContext.ask`: the run needs a run store, a
run with no answer yet ends ``"waiting"``, and ``graph.resume(run_id, answers={id: value})``
continues it (see :mod:`accord.runtime._input`).

Caveat: ``timeout=`` bounds the wait for an answer, not the node (unlike an agent's
``timeout=``); a paused run past its question's timeout applies ``on_timeout`` when resumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accord.agents._agent import format_inputs
from accord.errors import ConfigError
from accord.messages import Payload
from accord.prompts import Template
from accord.runtime import STOP, ActivationContext, Join, NodeOutput, schema_of

__all__ = ["Human"]


class Human:
    """A node whose output is a person's answer to a question (see module docstring).

    Args:
        name: the node's name.
        question: the question: template source written in your program, a ``Path`` to a
            template file, or a :class:`~accord.prompts.Template`.
        output: the answer's type (default ``str``).
        timeout: seconds to wait for an answer (None: as long as it takes).
        on_timeout: the answer used when ``timeout`` passes (it must fit ``output``), or
            ``"stop"`` (the default) to stop the run.
        join: ``"all"`` or ``"any"``, as for other nodes.

    Raises:
        ConfigError: ``output`` has no JSON schema, ``timeout`` is not positive, or
            ``on_timeout`` does not fit ``output``.

    Example::

        review = accord.Human(
            "reviewer",
            question="Approve this plan?\\n{{ last }}",
            output=accord.Approval,
            timeout=3600,
            on_timeout=accord.Approval(approved=False, reason="no answer within an hour"),
        )
    """

    accepts: tuple[type[Payload], ...] | None = None

    def __init__(
        self,
        name: str,
        *,
        question: str | Path | Template,
        output: Any = str,
        timeout: float | None = None,
        on_timeout: Any = STOP,
        join: Join = "all",
    ) -> None:
        self.name = name
        self.join: Join = join
        self.timeout: float | None = None
        """The node's own time limit: none (``answer_timeout`` bounds the wait)."""
        if timeout is not None and not timeout > 0:
            raise ConfigError(f"Human({name!r}): timeout must be a positive number of seconds.")
        self.answer_timeout = timeout
        self.on_timeout = on_timeout
        self.output = output
        self.schema = schema_of(output)
        if isinstance(question, Template):
            self.template = question
        elif isinstance(question, Path):
            self.template = Template.from_file(question)
        else:
            self.template = Template.from_string(question, name=f"<Human {name!r} question>")
        is_payload = isinstance(output, type) and issubclass(output, Payload)
        self.produces: type[Payload] | None = output if is_payload else None
        if not (isinstance(on_timeout, str) and on_timeout == STOP):
            from accord.runtime import AnswerError, check_answer, to_json

            try:
                check_answer(self.schema, to_json(on_timeout), f"{name}: on_timeout")
            except AnswerError as exc:
                raise ConfigError(
                    f"Human({name!r}): on_timeout={on_timeout!r} is not a valid answer: {exc}"
                ) from exc

    def question_for(self, ctx: ActivationContext) -> str:
        """The question for this activation, rendered from its inputs."""
        shown = [m for m in ctx.inputs if m.sender != "task"]
        last = shown[-1] if shown else None
        return self.template.render(
            task=ctx.task,
            round=ctx.round,
            name=self.name,
            inputs=format_inputs(shown),
            messages=[{"sender": m.sender, "text": m.text, "round": m.round} for m in shown],
            last=last.text if last is not None else ctx.task,
            payload=last.payload if last is not None else None,
        )

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        answer = await ctx.ask(
            self.question_for(ctx),
            output=self.output,
            timeout=self.answer_timeout,
            on_timeout=self.on_timeout,
        )
        if isinstance(answer, Payload):
            return NodeOutput(text=answer.as_text(), payload=answer)
        return NodeOutput(text=answer if isinstance(answer, str) else str(answer))

    def __repr__(self) -> str:
        return f"Human({self.name!r})"
