"""Router: rules, the LLM classifier (and its invalid labels), graphs and plain use."""

from __future__ import annotations

import pytest

import accord
from accord.ensemble import Router, Rule
from accord.errors import ConfigError, EnsembleError
from accord.testing import ScriptedBackend


async def test_router_rules_match_keywords_patterns_and_functions_in_order() -> None:
    router = Router(
        rules=[
            Rule("code", keywords=["python", "stack trace"]),
            Rule("math", pattern=r"\d+\s*[-+*/]\s*\d+"),
            Rule("long", when=lambda task: len(task) > 40),
        ],
        default="chat",
    )
    assert (await router.decide("Fix my Python script")).label == "code"
    assert (await router.decide("what is 12 * 7")).label == "math"
    assert (await router.decide("a stack trace and 1+1")).label == "code"
    assert (await router.decide("pythonic?")).label == "chat"  # whole words only
    decision = await router.decide("tell me a story that goes on and on and on and on")
    assert decision.label == "long" and decision.by == "rule" and decision.rule == 2
    assert (await router.decide("hi")).by == "default"


async def test_router_classifier_label_is_parsed_and_recorded() -> None:
    backend = ScriptedBackend({"clf": ["  Math. "]})
    router = Router(classifier=accord.Agent("clf", backend), labels=["math", "code"])
    decision = await router.decide("integrate x^2")
    assert decision.label == "math" and decision.by == "classifier"
    assert decision.usage.requests == 1 and decision.replies == ("  Math. ",)
    assert "math, code" in backend.requests[0].messages[-1].content


async def test_router_classifier_invalid_label_is_re_asked_then_falls_back() -> None:
    backend = ScriptedBackend({"clf": ["poetry", "code", "sports", "weather"]})
    router = Router(
        classifier=accord.Agent("clf", backend), labels=["math", "code"], default="math"
    )
    fixed = await router.decide("task one")
    assert fixed.label == "code" and fixed.replies == ("poetry", "code")
    assert "not one of the labels" in backend.requests[1].messages[-1].content
    fallback = await router.decide("task two")
    assert fallback.label == "math" and fallback.by == "default"
    assert fallback.replies == ("sports", "weather") and fallback.usage.requests == 2


async def test_router_without_default_raises_on_an_invalid_label() -> None:
    backend = ScriptedBackend({"clf": ["both math and code", "unsure"]})
    router = Router(classifier=accord.Agent("clf", backend), labels=["math", "code"])
    with pytest.raises(EnsembleError, match="no route"):
        await router.decide("task")


async def test_router_graph_runs_only_the_chosen_route_and_records_it() -> None:
    backend = ScriptedBackend({"clf": ["code"], "coder": ["def f(): ..."], "mathematician": []})
    router = Router(classifier=accord.Agent("clf"), labels=["math", "code"])
    graph = router.graph({"math": accord.Agent("mathematician"), "code": accord.Agent("coder")})
    result = await graph.run("write f", backend=backend)
    assert result.text == "def f(): ..."
    routed = next(m for m in result.transcript if m.sender == "router")
    assert routed.metadata == {"route": "code", "route_by": "classifier"}
    assert routed.text == "write f"
    assert backend.calls("mathematician") == 0
    assert result.usage_by_agent["router"].requests == 1


async def test_router_run_asks_the_chosen_target_and_adds_the_costs() -> None:
    backend = ScriptedBackend({"router_classifier": ["code"], "code": ["print(1)"]})
    router = Router(
        classifier=backend, labels=["math", "code"], targets={"math": backend, "code": backend}
    )
    routed = await router.run("print one")
    assert routed.text == "print(1)" and routed.decision.label == "code"
    assert routed.usage.requests == 2


def test_router_rejects_configurations_that_cannot_route() -> None:
    with pytest.raises(ConfigError, match="cannot decide"):
        Router()
    with pytest.raises(ConfigError, match="no test"):
        Rule("x")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        Rule("x", pattern="(")
    with pytest.raises(ConfigError, match="no target"):
        Router(rules=[Rule("a", keywords=["a"])], default="b", targets={"a": "x"})
    router = Router(rules=[Rule("a", keywords=["a"])])
    with pytest.raises(ConfigError, match="never chooses"):
        router.connect(accord.Graph("g"), {"b": "node"})
