"""Templates read each input message's payload: its kind and its fields (``m.payload``)."""

from __future__ import annotations

import pytest

import accord
from accord.testing import ScriptedBackend

pytestmark = pytest.mark.usefixtures("no_real_backends")


class FailingCase(accord.Payload, kind="tests.FailingCase"):
    """A test case the draft fails."""

    failing_input: str
    expected: int
    notes: list[str] = []


TEMPLATE = """\
{%- for m in messages -%}
[{{ m.sender }} r{{ m.round }} {{ m.kind }}]
{%- if m.payload %} input={{ m.payload.failing_input }} expected={{ m.payload.expected }}
{%- for n in m.payload.notes %} note={{ n }}{% endfor %}
{%- else %} text={{ m.text }}{% endif %}
{% endfor -%}"""


def _prompt(backend: ScriptedBackend, agent: str) -> str:
    return [r for r in backend.requests if r.agent == agent][-1].messages[-1].content


async def test_agent_template_reads_the_fields_of_a_custom_payload() -> None:
    @accord.step
    def tests(draft: str) -> FailingCase:
        return FailingCase(failing_input="[3, 1]", expected=2, notes=["empty list", "</message>"])

    graph = accord.Graph("fix")
    graph.add(tests, accord.Agent("fixer", template=TEMPLATE))
    graph.connect("tests", "fixer")

    backend = ScriptedBackend({"fixer": ["fixed"]})
    await graph.run("def f(xs): ...", backend=backend)

    prompt = _prompt(backend, "fixer")
    assert prompt == (
        "[tests r0 tests.FailingCase] input=[3, 1] expected=2 note=empty list note=&lt;/message>\n"
    )


async def test_agent_template_sees_verdict_reasons_and_none_for_a_text_message() -> None:
    @accord.step
    def check(draft: str) -> accord.Verdict:
        return accord.Verdict(accepted=False, reasons=["test_sort failed", "test_empty failed"])

    template = (
        "{% for m in messages %}{{ m.sender }}: {{ m.kind }} {{ m.payload }}"
        "{% if m.payload %}{% for r in m.payload.reasons %} | {{ r }}{% endfor %}{% endif %}\n"
        "{% endfor %}"
    )
    graph = accord.Graph("review")
    graph.add(accord.Agent("draft"), check, accord.Agent("reviewer", template=template))
    graph.connect("draft", "check").connect("draft", "reviewer").connect("check", "reviewer")

    backend = ScriptedBackend({"draft": ["def sort(): ..."], "reviewer": ["ok"]})
    await graph.run("write sort", backend=backend)

    lines = _prompt(backend, "reviewer").splitlines()
    assert lines == [
        "draft: None None",
        "check: Verdict {'accepted': False, 'reasons': ['test_sort failed', 'test_empty failed']}"
        " | test_sort failed | test_empty failed",
    ]
