"""Draw a graph as Mermaid or Graphviz DOT text.

Conditional edges are dashed and labelled ``when``; bounded edges carry ``≤N``. Entry nodes are
drawn as stadiums (Mermaid) or with a bold border (DOT); exits with a double border.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accord.graphs._graph import Edge, Graph

__all__ = ["to_mermaid", "to_dot"]


def _mid(name: str) -> str:
    return re.sub(r"\W", "_", name) or "_"


def _label(e: Edge) -> str:
    parts = []
    if e.when is not None:
        parts.append("when")
    if e.max_rounds is not None:
        parts.append(f"≤{e.max_rounds}")
    return " ".join(parts)


def _quote(text: str) -> str:
    return text.replace('"', "'")


def to_mermaid(graph: Graph) -> str:
    """Mermaid ``flowchart TD`` source for ``graph``."""
    entries, exits = set(graph.entries), set(graph.exits)
    lines = ["flowchart TD"]
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        text = _quote(f"{name}<br/><small>{kind}</small>")
        if name in entries:
            lines.append(f'    {_mid(name)}(["{text}"])')
        elif name in exits:
            lines.append(f'    {_mid(name)}[["{text}"]]')
        else:
            lines.append(f'    {_mid(name)}["{text}"]')
    for e in graph.edges:
        label = _label(e)
        arrow = "-.->" if e.when is not None else "-->"
        middle = f"|{label}|" if label else ""
        lines.append(f"    {_mid(e.src)} {arrow}{middle} {_mid(e.dst)}")
    return "\n".join(lines) + "\n"


def to_dot(graph: Graph) -> str:
    """Graphviz DOT source for ``graph``."""
    entries, exits = set(graph.entries), set(graph.exits)
    lines = [
        f'digraph "{_quote(graph.name)}" {{',
        "    rankdir=TB;",
        "    node [shape=box, style=rounded];",
    ]
    for name, node in graph.nodes.items():
        attrs = [f'label="{_quote(name)}\\n({type(node).__name__})"']
        if name in entries:
            attrs.append("penwidth=2")
        if name in exits:
            attrs.append("peripheries=2")
        lines.append(f'    "{_quote(name)}" [{", ".join(attrs)}];')
    for e in graph.edges:
        attrs = []
        label = _label(e)
        if label:
            attrs.append(f'label="{label}"')
        if e.when is not None:
            attrs.append("style=dashed")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f'    "{_quote(e.src)}" -> "{_quote(e.dst)}"{suffix};')
    lines.append("}")
    return "\n".join(lines) + "\n"
