"""The public API: the names ``accord`` exports, the error tree, and backend name resolution."""

from __future__ import annotations

import pytest

import accord
import accord.errors
from accord.errors import AccordError, ConfigError, RunError, UnknownBackendError, UsageError

EXPECTED_ALL = [
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


def test_public_api_all_is_pinned() -> None:
    assert accord.__all__ == EXPECTED_ALL


def test_public_api_every_name_is_importable() -> None:
    for name in accord.__all__:
        assert getattr(accord, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from accord import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(EXPECTED_ALL)


def test_public_api_batch_is_the_function_even_after_its_package_loads() -> None:
    import accord.batch.cli  # noqa: F401  (loads the package and a submodule)

    assert callable(accord.batch) and accord.batch.__name__ == "batch"


def test_public_api_version_is_a_string() -> None:
    assert isinstance(accord.__version__, str) and accord.__version__.count(".") == 2


def test_errors_module_lists_every_error_and_splits_them_by_fault() -> None:
    for name in accord.errors.__all__:
        cls = getattr(accord.errors, name)
        assert issubclass(cls, AccordError), name
        if cls is not AccordError:
            assert issubclass(cls, UsageError) != issubclass(cls, RunError), name
    assert not issubclass(UsageError, RunError) and not issubclass(RunError, UsageError)


def test_backend_unknown_prefix_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownBackendError) as info:
        accord.backend("opneai:gpt-4o-mini")

    err = info.value
    assert str(err) == (
        "unknown backend 'opneai:gpt-4o-mini'. Did you mean 'openai:gpt-4o-mini'? "
        "Known prefixes: 'contrastive', 'hf', 'openai', 'proxy', 'speculative'."
    )
    assert err.name == "opneai:gpt-4o-mini"
    assert err.known == ("contrastive", "hf", "openai", "proxy", "speculative")
    assert isinstance(err, UsageError)


def test_backend_unknown_prefix_without_close_match_lists_known_prefixes() -> None:
    with pytest.raises(UnknownBackendError) as info:
        accord.backend("zzz:model")

    assert "Did you mean" not in str(info.value)
    assert "Known prefixes: 'contrastive', 'hf', 'openai', 'proxy', 'speculative'." in str(info.value)


def test_backend_name_without_prefix_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="has no provider prefix"):
        accord.backend("gpt-4o-mini")


async def test_graph_run_with_unknown_backend_name_fails_before_running() -> None:
    g = accord.Graph("g").add(accord.Agent("a"))

    with pytest.raises(UnknownBackendError, match="Did you mean 'openai:x'"):
        await g.run("t", backend="opneai:x")


def test_no_module_imports_another_packages_private_module() -> None:
    """Packages share what they export (their ``__init__`` or a public module), never a private
    module: ``from accord.runtime._node import X`` is allowed only inside ``accord/runtime``."""
    import re
    from pathlib import Path

    root = Path(accord.__file__).parent
    private = re.compile(r"^\s*from accord\.([a-z_]+)\.(_[a-z_0-9]+) import", re.M)
    offending = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        own = parts[0] if len(parts) > 1 else None
        for match in private.finditer(path.read_text()):
            if match.group(1) != own:
                offending.append(f"{path.relative_to(root)}: accord.{match.group(1)}.{match.group(2)}")
    assert offending == []
