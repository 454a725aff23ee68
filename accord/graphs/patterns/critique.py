"""Critique and revise (Self-Refine: Madaan et al. 2023, "Self-Refine: Iterative Refinement with
Self-Feedback", arXiv 2303.17651), optionally with a check that runs on every draft.

The solver drafts; the critic returns a :class:`~accord.messages.Critique`; while the critic does not
approve, its critique goes back to the solver, which revises. The loop ends on approval or after
``max_rounds`` drafts. The output is the solver's last draft.

With ``check=`` (a step that runs tests, a linter, a verifier agent...) every draft goes to the
check first, and the check decides: the loop ends as soon as a draft passes it, without asking the
critic about that draft (the critic's node then sends an approval saying it was not asked). A
failing check's report goes to the critic with the draft, and on to the solver: the critic's
message to the solver carries the critique followed by the check's report, so one revision prompt
holds both (the critic's payload stays its own ``Critique``). Without a critic, the check's report
goes straight back to the solver.

Caveat: with a check, the check alone ends the loop; a critic that approves a draft the check
fails does not stop the revisions (its approval is still shown to the solver).
"""

from __future__ import annotations

from accord.errors import ConfigError
from accord.graphs._graph import DEFAULT_MAX_STEPS, Graph
from accord.graphs.patterns._common import check_output
from accord.messages import Critique, Message, Payload, Verdict
from accord.runtime import ActivationContext, Join, Node, NodeOutput

__all__ = ["critique_revise"]


def _rejected(m: Message) -> bool:
    return isinstance(m.payload, Critique) and not m.payload.approved


def _passed(m: Message) -> bool:
    """The check accepted the draft (``Verdict.accepted`` or ``Critique.approved``)."""
    p = m.payload
    return (isinstance(p, Verdict) and p.accepted) or (isinstance(p, Critique) and p.approved)


def _failed(m: Message) -> bool:
    return not _passed(m)


_CHECK = "accord.check"
"""Metadata key of the critic's messages in a checked loop: ``"passed"`` or ``"failed"``."""


class _CriticWithCheck:
    """The critic of a checked loop: it reads the draft and the check's report, and its message
    quotes that report after the critique.

    The solver runs once per message that reaches it on its loop, so the check's report cannot
    travel to it on an edge of its own (the solver would revise twice per draft): it rides with
    the critique. The payload is the critic's own; only the text gains the report. On a draft
    that passes the check the critic is not asked: the node sends an approval saying so, and the
    loop ends.
    """

    def __init__(self, critic: Node, check: str) -> None:
        self.critic = critic
        self.agent = getattr(critic, "agent", critic)  # what the CLI reads to find a backend
        self.check = check
        self.name = critic.name
        self.join: Join = "all"
        self.timeout = critic.timeout
        self.accepts: tuple[type[Payload], ...] | None = None
        self.produces: type[Payload] | None = Critique

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        reports = [m for m in ctx.inputs if m.sender == self.check]
        if any(_passed(m) for m in reports):
            return NodeOutput(
                text=f"Not reviewed: the check {self.check!r} passed this draft.",
                payload=Critique(approved=True),
                metadata={_CHECK: "passed"},
            )
        out = await self.critic(ctx)
        quoted = "\n".join(m.text for m in reports)
        return NodeOutput(
            text=f"{out.text}\n\nThe check {self.check!r} reported on this draft:\n{quoted}",
            payload=out.payload,
            metadata={**out.metadata, _CHECK: "failed"},
        )


def critique_revise(
    solver: Node,
    critic: Node | None,
    max_rounds: int = 3,
    *,
    check: Node | None = None,
    name: str = "critique_revise",
) -> Graph:
    """A solver/critic loop, optionally gated by a check on every draft.

    Without ``check``: solver -> critic -> solver, until the critic approves. With ``check``:
    solver -> check -> critic -> solver, until the check passes (the critic is not called on a
    draft that passes); with ``check`` and ``critic=None``: solver -> check -> solver.

    Args:
        solver: drafts and revises (``accord.Solver``).
        critic: produces a ``Critique`` (``accord.Critic``, or a step returning ``Critique``); may
            be None when ``check`` is given.
        max_rounds: the most drafts the solver writes (1 means no revision), with or without a
            check; every draft is checked, so the transcript says whether the last one passed.
        check: optional; a node returning :class:`~accord.messages.Verdict` (passes when
            ``accepted``) or :class:`~accord.messages.Critique` (passes when ``approved``),
            typically an ``@accord.step(thread=True)`` that runs tests on the draft. A failing
            check's message (its reasons) reaches the critic and the solver.
        name: the graph's name.

    Raises:
        ConfigError: the critic or check produces the wrong payload, both are None, or
            ``max_rounds`` is below 1.

    Example::

        @accord.step(thread=True)
        def tests(draft: str) -> accord.Verdict:
            failures = run_tests(draft)
            return accord.Verdict(accepted=not failures, reasons=failures)

        g = accord.critique_revise(accord.Solver("solver"), accord.Critic("critic"),
                                   max_rounds=3, check=tests)
        result = await g.run("Write sort(xs).", backend=...)
        print(result.text)  # the last draft: the first that passed the tests, or the third
    """
    if max_rounds < 1:
        raise ConfigError(f"critique_revise(): max_rounds must be 1 or more, not {max_rounds}.")
    if check is None:
        if critic is None:
            raise ConfigError(
                "critique_revise() needs a critic, a check, or both; got neither. Pass "
                "critic=accord.Critic(...) or check=<a step returning accord.Verdict>."
            )
        check_output("critique_revise", "critic", critic, Critique)
        # a draft and a critique per round
        g = Graph(name, max_steps=max(DEFAULT_MAX_STEPS, 2 * max_rounds + 2))
        g.add(solver, critic)
        g.connect(solver, critic)
        g.connect(critic, solver, when=_rejected, max_rounds=max_rounds)
    else:
        if check.produces is None or not issubclass(check.produces, (Verdict, Critique)):
            got = check.produces.__name__ if check.produces is not None else "text"
            raise ConfigError(
                f"critique_revise(): the check {check.name!r} must produce Verdict or Critique "
                f"(it produces {got}); annotate the step's return type as accord.Verdict."
            )
        # a draft, a check and a critique per round
        g = Graph(name, max_steps=max(DEFAULT_MAX_STEPS, 3 * max_rounds + 2))
        g.add(solver, check)
        g.connect(solver, check)
        if critic is None:
            g.connect(check, solver, when=_failed, max_rounds=max_rounds)
        else:
            check_output("critique_revise", "critic", critic, Critique)
            g.add(_CriticWithCheck(critic, check.name))
            # The critic reads the draft and the check's report (a join of both); the check, not
            # the critic, decides whether the draft goes back.
            g.connect(solver, critic)
            g.connect(check, critic)
            g.connect(
                critic,
                solver,
                when=lambda m: m.metadata.get(_CHECK) == "failed",
                max_rounds=max_rounds,
            )
    g.set_entry(solver)
    g.set_exit(solver)
    return g
