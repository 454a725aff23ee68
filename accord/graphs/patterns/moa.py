"""Mixture-of-Agents (Wang et al. 2024, "Mixture-of-Agents Enhances Large Language Model
Capabilities", arXiv 2406.04692).

``layers`` layers of proposers: the first answers the task; each later layer sees every answer of
the layer before (with the aggregate-and-synthesise prompt) and answers again; a final aggregator
synthesises the last layer into one answer. Proposers may use different backends (the paper's
point: models are better when they see other models' answers).

Caveat: the graph is unrolled, so proposer ``p`` of layer ``l`` is the node ``"p@l"``.
"""

from __future__ import annotations

from collections.abc import Sequence

from accord.agents import Agent
from accord.errors import ConfigError
from accord.graphs._graph import DEFAULT_MAX_STEPS, Graph
from accord.graphs.patterns._common import check_agents

__all__ = ["mixture_of_agents"]


def mixture_of_agents(
    proposers: Sequence[Agent],
    aggregator: Agent,
    layers: int = 3,
    *,
    name: str = "mixture_of_agents",
) -> Graph:
    """A layered Mixture-of-Agents graph.

    Args:
        proposers: the agents of each layer (copied per layer as ``name@layer``).
        aggregator: writes the final answer from the last layer (``accord.Aggregator``).
        layers: proposer layers (the paper used 3 layers of 6 proposers, then the aggregator).

    Example::

        g = accord.mixture_of_agents([accord.Agent("a", "openai:m1"), accord.Agent("b", "openai:m2")],
                                     accord.Aggregator("final", "openai:m3"), layers=2)
    """
    check_agents("mixture_of_agents", "proposers", proposers)
    if layers < 1:
        raise ConfigError(f"mixture_of_agents(): layers must be 1 or more, not {layers}.")
    agents: list[Agent] = []
    for a in proposers:
        if not isinstance(a, Agent):
            raise ConfigError(
                f"mixture_of_agents(): {a!r} is not an accord.Agent (proposers are copied per layer)."
            )
        agents.append(a)
    g = Graph(name, max_steps=max(DEFAULT_MAX_STEPS, layers * len(agents) + 2))
    previous: list[str] = []
    for layer in range(layers):
        current: list[str] = []
        for agent in agents:
            node = agent.clone(
                f"{agent.name}@{layer}", **({"template": "aggregator"} if layer else {})
            )
            g.add(node)
            for src in previous:
                g.connect(src, node.name)
            current.append(node.name)
        previous = current
    g.add(aggregator)
    for src in previous:
        g.connect(src, aggregator.name)
    return g
