"""The built-in roles: agents with a built-in template and output type.

=============  ==============  ===========================================================
role           template        output
=============  ==============  ===========================================================
Planner        planner.j2      :class:`~accord.messages.Plan`
Solver         solver.j2       text (pass ``output=Solution`` for a structured answer)
Critic         critic.j2       :class:`~accord.messages.Critique`
Verifier       verifier.j2     :class:`~accord.messages.Verdict`
Judge          judge.j2        :class:`~accord.messages.Answer`
Debater        debater.j2      text (answers are extracted when votes are counted)
Aggregator     aggregator.j2   text
=============  ==============  ===========================================================

Every option of :class:`~accord.agents.Agent` can override these defaults.
"""

from __future__ import annotations

from typing import ClassVar

from accord._fast import construct
from accord.agents._agent import Agent
from accord.messages import Answer, Critique, Message, Payload, Plan, Verdict

__all__ = ["Planner", "Solver", "Critic", "Verifier", "Judge", "Debater", "Aggregator"]


class Planner(Agent):
    """Breaks a task into a :class:`~accord.messages.Plan`."""

    default_template = "planner"
    default_output: ClassVar[type[Payload] | type[str]] = Plan
    default_instructions = "You are a planner. You break tasks into short, concrete steps."


class Solver(Agent):
    """Solves the task, and revises its answer when it receives feedback."""

    default_template = "solver"
    default_instructions = "You are a careful problem solver. Be correct and concise."


class Critic(Agent):
    """Reviews a candidate and returns a :class:`~accord.messages.Critique`."""

    default_template = "critic"
    default_output: ClassVar[type[Payload] | type[str]] = Critique
    default_instructions = "You are a strict, fair critic. Approve only correct, complete work."


class Verifier(Agent):
    """Accepts or rejects a candidate with a :class:`~accord.messages.Verdict`."""

    default_template = "verifier"
    default_output: ClassVar[type[Payload] | type[str]] = Verdict
    default_instructions = "You are a verifier. You check work against the task precisely."


class Judge(Agent):
    """Decides between answers and gives an :class:`~accord.messages.Answer`."""

    default_template = "judge"
    default_output: ClassVar[type[Payload] | type[str]] = Answer
    default_instructions = "You are an impartial judge. Decide on the merits of the arguments."


class Debater(Agent):
    """Answers, then updates its answer after reading the other debaters' answers.

    When an input is a debate round (a payload with ``others(speaker)``), the debater is shown the
    *other* debaters' answers of that round, one message each; its own are in its memory.
    """

    default_template = "debater"
    default_instructions = (
        "You are one of several agents debating a question. End your reply with a line "
        "'Answer: <your final answer>'."
    )

    def prompt(self, task: str, inputs: tuple[Message, ...], round: int) -> str:
        shown: list[Message] = []
        for m in inputs:
            others = getattr(m.payload, "others", None)
            if not callable(others):
                shown.append(m)
                continue
            for position in others(self.name):
                shown.append(
                    construct(
                        Message,
                        **{
                            **m.__dict__,
                            "sender": position.speaker,
                            "text": position.text,
                            "payload": None,
                        },
                    )
                )
        return super().prompt(task, tuple(shown), round)


class Aggregator(Agent):
    """Synthesises several responses into one answer (Mixture-of-Agents style)."""

    default_template = "aggregator"
    default_instructions = "You synthesise several responses into one better answer."
