"""Graphs of agents: the Graph class, its validation and drawing, and the ready-made patterns."""

from __future__ import annotations

from accord.graphs._graph import Edge, Graph, Subgraph

__all__ = ["Graph", "Edge", "Subgraph"]
