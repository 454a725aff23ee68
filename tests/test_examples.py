"""Every example runs, with fake backends (and one through its command line on a tiny local model)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import accord
from accord.testing import FunctionBackend, ScriptedBackend

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example(name: str) -> ModuleType:
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLES))


async def test_example_debate_reaches_the_majority_answer() -> None:
    backend = ScriptedBackend(
        {"debater_1": ["Answer: 408"], "debater_2": ["Answer: 408"], "debater_3": ["Answer: 408"]}
    )
    result = await example("debate").run("What is 17 * 24?", backend)
    assert result.output is not None and result.output.payload.answer == "408"  # type: ignore[union-attr]


async def test_example_critique_revises_until_approved() -> None:
    backend = ScriptedBackend(
        {
            "writer": ["rain", "soft autumn rain"],
            "editor": ['{"approved": false, "issues": ["short"]}', '{"approved": true}'],
        }
    )
    result = await example("critique").run("haiku", backend)
    assert result.text == "soft autumn rain"


async def test_example_plan_solve_verify_runs_candidate_code_and_retries() -> None:
    wrong = "```python\nprint(0)\n```"
    right = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    backend = ScriptedBackend(
        {"planner": ['{"steps": ["read", "add", "print"]}'], "coder": [wrong, right]}
    )
    mod = example("plan_solve_verify")
    result = await mod.run(mod.TASK, backend)
    verdicts = [m.payload for m in result.transcript if isinstance(m.payload, accord.Verdict)]
    assert [v.accepted for v in verdicts] == [False, True]
    assert "expected '7', got '0'" in verdicts[0].reasons[0]
    assert (
        "expected '7'" in backend.requests[-1].messages[-1].content
    )  # the failure went back to the coder


async def test_example_plan_solve_verify_times_out_a_hanging_program() -> None:
    mod = example("plan_solve_verify")
    ok, why = await mod.run_case("import time; time.sleep(10)", "", limit_s=0.5)
    assert not ok and "timed out" in why


async def test_example_mixture_of_agents_aggregates_the_last_layer() -> None:
    backend = FunctionBackend(lambda r: f"{r.agent} view")
    result = await example("mixture_of_agents").run("sky", backend)
    assert result.text == "aggregator view" and result.usage.requests == 7


async def test_example_custom_graph_loops_until_the_score_passes() -> None:
    good = "A solar-powered lamp that charges by day and glows all night, with warm light and no cables at all."
    backend = ScriptedBackend({"writer": ["too short", good]})
    result = await example("custom_graph").run("a solar-powered lamp", backend)
    assert result.text == good
    scores = [m.payload for m in result.transcript if m.sender == "score"]
    assert [s.value for s in scores] == [0.0, 1.0]  # type: ignore[union-attr]


@pytest.mark.slow
def test_example_debate_command_line_on_a_tiny_local_model(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from accord._tiny import save_tiny_llama

    folder = save_tiny_llama(tmp_path / "tiny", max_positions=8192)
    env = {**os.environ, "ACCORD_DURABILITY": "off", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "debate.py"), "2+2?", "--model", f"hf:{folder}"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "answer:" in done.stdout and "--- debater_1 (round 0)" in done.stdout


async def test_example_tools_calculates_and_reads_a_file(tmp_path: Path) -> None:
    from accord.testing import tool_call

    (tmp_path / "notes.txt").write_text("Notes about the spring harvest.", encoding="utf-8")
    backend = ScriptedBackend(
        {
            "assistant": [
                [
                    tool_call("calculator", expression="0.125 * 1840"),
                    tool_call("read_file", name="notes.txt"),
                ],
                tool_call("read_file", name="../secret.txt"),
                "230; the notes are about the spring harvest.",
            ]
        }
    )
    mod = example("tools")

    result = await mod.run(mod.TASK, backend, tmp_path)

    assert result.text == "230; the notes are about the spring harvest."
    first = [m.content for m in backend.requests[1].messages if m.role == "tool"]
    assert first == ["230.0", "Notes about the spring harvest."]
    refused = [m.content for m in backend.requests[2].messages if m.role == "tool"][-1]
    assert "outside the shared folder" in refused


async def test_example_verified_search_samples_until_the_checks_pass() -> None:
    wrong = "```python\ndef running_max(xs):\n    return sorted(xs)\n```"
    right = (
        "```python\ndef running_max(xs):\n    out, best = [], None\n    for x in xs:\n"
        "        best = x if best is None else max(best, x)\n        out.append(best)\n"
        "    return out\n```"
    )
    mod = example("verified_search")
    backend = ScriptedBackend({"search": [wrong, right]})
    result = await mod.run(mod.TASK, backend)
    assert result.text == right and backend.calls() == 2
    assert result.output is not None and result.output.metadata["stop"] == "verified"
    math = ScriptedBackend({"search": ["Answer: 2", "The roots are 2 and 3. Answer: 3"]})
    solved = await mod.run_math(math)
    assert solved.text.endswith("Answer: 3") and math.calls() == 2
