"""Prompt templates: rendering, the missing-variable error, and the sandbox (T27)."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from accord.errors import TemplateError, TemplateSecurityError
from accord.prompts import BUILTIN_TEMPLATES, Template, render

INJECTIONS = [
    "{{ ''.__class__.__mro__ }}",
    "{% for x in range(10**9) %}x{% endfor %}",
    "{{ cycler.__init__.__globals__.os.system('id') }}",
    "{# comment #}{{ 7 * 7 }}",
]


def test_template_renders_its_variables() -> None:
    t = Template.from_string("Summarise for {{ audience }}:\n{{ task }}", name="summary")

    assert t.render(task="the text", audience="children") == "Summarise for children:\nthe text"


def test_render_accepts_a_template_or_a_builtin_name() -> None:
    t = Template.from_string("[{{ task }}]")

    assert render(t, task="x") == "[x]"
    assert "<task>\nx\n</task>" in render("agent", task="x", messages=[], inputs="")


def test_template_missing_variable_raises_template_error_naming_it() -> None:
    t = Template.from_string("{{ task }} for {{ audience }}", name="summary")

    with pytest.raises(TemplateError) as info:
        t.render(task="x")

    err = info.value
    assert err.template == "summary"
    assert err.variable == "audience"
    assert "'summary'" in str(err) and "'audience'" in str(err)
    assert "given: task" in str(err)
    assert isinstance(err.__cause__, jinja2.UndefinedError)


def test_template_missing_attribute_names_the_attribute() -> None:
    t = Template.from_string("{{ user.name }}", name="greeting")

    with pytest.raises(TemplateError) as info:
        t.render(user={})

    assert info.value.variable == "name"


def test_template_syntax_error_raises_template_error_with_line() -> None:
    with pytest.raises(TemplateError, match=r"'broken' has a syntax error on line 2") as info:
        Template.from_string("ok\n{% if %}", name="broken")

    assert info.value.template == "broken"


def test_template_unknown_builtin_raises_template_error_listing_builtins() -> None:
    with pytest.raises(TemplateError, match="no built-in template named 'poet'") as info:
        Template.builtin("poet")

    assert "solver" in str(info.value)


def test_template_from_file_renders_and_missing_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "hello.j2"
    path.write_text("Hello {{ name }}!", encoding="utf-8")

    assert Template.from_file(path).render(name="Ada") == "Hello Ada!"
    with pytest.raises(TemplateError, match="cannot read template file"):
        Template.from_file(tmp_path / "missing.j2")


@pytest.mark.parametrize("name", BUILTIN_TEMPLATES)
def test_builtin_template_renders_task_and_marked_inputs(name: str) -> None:
    inputs = '<message from="pro" round="0">\nit is B\n</message>'
    text = render(
        name,
        task="Which is it?",
        messages=[{"sender": "pro", "text": "it is B", "round": 0}],
        inputs=inputs,
        round=1,
        name="agent",
    )

    assert "<task>\nWhich is it?\n</task>" in text
    assert inputs in text


@pytest.mark.parametrize("text", INJECTIONS)
def test_template_variable_with_template_syntax_renders_literally(text: str) -> None:
    # T27(a): text from users or agents is only ever a value, never template source.
    assert Template.from_string("<{{ task }}>").render(task=text) == f"<{text}>"
    assert text in render("judge", task="q", inputs=text, messages=[])


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ ''|attr('__class__') }}",
        "{{ '{0.__class__}'.format(1) }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_template_unsafe_source_raises_template_security_error(source: str) -> None:
    # T27(b)
    with pytest.raises(TemplateSecurityError) as info:
        Template.from_string(source, name="evil").render()

    assert info.value.template == "evil"
    assert isinstance(info.value, TemplateError)


def test_template_unsafe_source_writes_no_canary_file(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    source = "{{ cycler.__init__.__globals__.os.system('touch " + str(canary) + "') }}"

    with pytest.raises(TemplateSecurityError):
        Template.from_string(source).render()

    assert not canary.exists()


def test_template_huge_range_in_source_raises_template_security_error() -> None:
    # The sandbox caps range(); its OverflowError must not escape raw.
    with pytest.raises(TemplateSecurityError, match="range"):
        Template.from_string("{% for x in range(10**9) %}{% endfor %}", name="loop").render()


def test_jinja2_is_at_least_3_1_6() -> None:
    # T27(d): 3.1.6 fixes CVE-2025-27516 (|attr reaching str.format).
    version = tuple(int(p) for p in jinja2.__version__.split(".")[:3])

    assert version >= (3, 1, 6)
