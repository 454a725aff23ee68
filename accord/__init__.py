"""accord: make several language models work together.

Cooperate (agent graphs, debate, critique, plan-solve-verify, mixture-of-agents), ensemble
(routing, cascades, voting, MBR, ranking, fusion, token-level ensembles) and merge (soups, SLERP,
task arithmetic, TIES, DARE, Model Stock).

``import accord`` stays light: torch, transformers and the openai SDK load only when a backend or
a merge needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from accord._config import configure
from accord._otel import instrument, uninstrument
from accord.agents import (
    Agent,
    Aggregator,
    Critic,
    Debater,
    Human,
    Judge,
    Planner,
    Solver,
    Step,
    Verifier,
    step,
)
from accord.backends import Backend, backend, default_model
from accord.batch import batch  # eager: the function, not the subpackage, is accord.batch
from accord.errors import (
    AccordError,
    ConfigError,
    EnsembleError,
    GraphError,
    NodeError,
    OutputValidationError,
    RunError,
    StepLimitError,
    UsageError,
)
from accord.graphs import Graph
from accord.graphs.patterns import (
    critique_revise,
    debate,
    judge_panel,
    mixture_of_agents,
    plan_solve_verify,
    round_robin,
    selector_chat,
)
from accord.messages import Answer, Critique, Message, Payload, Plan, Solution, Usage, Verdict, Vote
from accord.prompts import Template
from accord.runtime import (
    Approval,
    CostBudget,
    MaxRounds,
    MaxSteps,
    Question,
    RequestBudget,
    RunResult,
    Timeout,
    TokenBudget,
    Until,
)
from accord.tools import Tool

if TYPE_CHECKING:
    from accord.decoding import Contrastive, ProxyTuned, Speculative
    from accord.ensemble import (
        Candidates,
        Cascade,
        Router,
        Rule,
        Stage,
        TokenEnsemble,
        VoteNode,
        best_of_n,
        fuse,
        mbr,
        pairwise_rank,
        self_consistency,
        verified_search,
        vote,
    )
    from accord.store import open_store

_DECODING = frozenset({"Speculative", "Contrastive", "ProxyTuned"})

_ENSEMBLE = frozenset(
    {
        "Candidates",
        "Cascade",
        "Router",
        "Rule",
        "Stage",
        "TokenEnsemble",
        "VoteNode",
        "best_of_n",
        "fuse",
        "mbr",
        "pairwise_rank",
        "self_consistency",
        "verified_search",
        "vote",
    }
)

__version__ = "0.1.0"

__all__ = [
    # graphs and nodes
    "Graph",
    "Agent",
    "Planner",
    "Solver",
    "Critic",
    "Verifier",
    "Judge",
    "Debater",
    "Aggregator",
    "Step",
    "step",
    "Human",
    "Template",
    "Tool",
    # cooperation patterns
    "debate",
    "critique_revise",
    "plan_solve_verify",
    "mixture_of_agents",
    "round_robin",
    "selector_chat",
    "judge_panel",
    # ensembles
    "Router",
    "Rule",
    "Cascade",
    "Stage",
    "TokenEnsemble",
    "vote",
    "mbr",
    "best_of_n",
    "pairwise_rank",
    "fuse",
    "self_consistency",
    "verified_search",
    "VoteNode",
    "Candidates",
    # cooperative decoding
    "Speculative",
    "Contrastive",
    "ProxyTuned",
    # messages
    "Message",
    "Payload",
    "Plan",
    "Solution",
    "Critique",
    "Verdict",
    "Answer",
    "Vote",
    "Usage",
    # running
    "RunResult",
    "Question",
    "Approval",
    "MaxSteps",
    "MaxRounds",
    "Timeout",
    "TokenBudget",
    "CostBudget",
    "RequestBudget",
    "Until",
    "batch",
    # recording
    "configure",
    "open_store",
    # backends
    "Backend",
    "backend",
    "default_model",
    # observability
    "instrument",
    "uninstrument",
    # errors
    "AccordError",
    "UsageError",
    "RunError",
    "ConfigError",
    "GraphError",
    "OutputValidationError",
    "StepLimitError",
    "NodeError",
    "EnsembleError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The ensemble names and open_store load their packages on first use, which keeps
    # `import accord` light.
    if name == "open_store":
        from accord.store import open_store

        return open_store
    if name in _ENSEMBLE:
        import accord.ensemble

        return getattr(accord.ensemble, name)
    if name in _DECODING:  # loaded on first use, like the ensembles
        import accord.decoding

        return getattr(accord.decoding, name)
    if name == "mcp":  # accord.mcp.tools(...): the MCP SDK loads only when it is used
        import accord.mcp

        return accord.mcp
    if name == "verify":  # accord.verify.python_checks(...), loaded on first use
        import accord.verify

        return accord.verify
    raise AttributeError(f"module 'accord' has no attribute {name!r}")
