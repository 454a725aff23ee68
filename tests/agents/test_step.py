"""@step: parameter binding, declared types (T19b), threads and options."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import accord
from accord.errors import ConfigError, MessageTypeError
from accord.messages import Message
from accord.runtime import ActivationContext
from accord.testing import ScriptedBackend

pytestmark = pytest.mark.usefixtures("no_real_backends")


def _after(producer: Any, consumer: Any) -> accord.Graph:
    return accord.Graph("pair").add(producer, consumer).connect(producer.name, consumer.name)


async def test_step_task_parameter_gets_the_task_text() -> None:
    @accord.step
    def shout(task) -> str:
        return task.upper()

    result = await accord.Graph("g").add(shout).run("hello")

    assert result.text == "HELLO"


async def test_step_plain_parameter_gets_the_latest_input_text() -> None:
    seen: list[str] = []

    @accord.step
    def echo(text) -> str:
        seen.append(text)
        return f"echo: {text}"

    backend = ScriptedBackend({"writer": ["a draft"]})

    result = await _after(accord.Agent("writer"), echo).run("task text", backend=backend)

    assert seen == ["a draft"]
    assert result.text == "echo: a draft"


async def test_step_plain_parameter_of_an_entry_gets_the_task() -> None:
    @accord.step
    def first(text) -> str:
        return f"<{text}>"

    assert (await accord.Graph("g").add(first).run("the task")).text == "<the task>"


async def test_step_payload_parameter_gets_the_payload_and_returns_one() -> None:
    @accord.step
    def check(solution: accord.Solution) -> accord.Verdict:
        ok = solution.answer == "42"
        return accord.Verdict(accepted=ok, reasons=[] if ok else ["wrong"])

    solver = accord.Solver("solver", output=accord.Solution)
    backend = ScriptedBackend({"solver": ['{"answer": "42"}']})

    result = await _after(solver, check).run("6 * 7?", backend=backend)

    assert check.accepts == (accord.Solution,)
    assert check.produces is accord.Verdict
    assert result.output is not None
    assert result.output.payload == accord.Verdict(accepted=True)
    assert result.output.text == "Accepted."


async def test_step_messages_and_ctx_parameters_get_inputs_and_context() -> None:
    captured: dict[str, Any] = {}

    @accord.step
    def inspect_inputs(messages, ctx) -> str:
        captured["messages"] = messages
        captured["ctx"] = ctx
        return "done"

    g = accord.Graph("fan").add(accord.Agent("a"), accord.Agent("b"), inspect_inputs)
    g.connect("a", "inspect_inputs").connect("b", "inspect_inputs")
    backend = ScriptedBackend({"a": ["from a"], "b": ["from b"]})

    result = await g.run("t", backend=backend, run_id="run42")

    messages: list[Message] = captured["messages"]
    ctx: ActivationContext = captured["ctx"]
    assert [(m.sender, m.text) for m in messages] == [("a", "from a"), ("b", "from b")]
    assert isinstance(ctx, ActivationContext)
    assert (ctx.node, ctx.round, ctx.run_id, ctx.task) == ("inspect_inputs", 0, "run42", "t")
    assert ctx.activation_id == "run42/inspect_inputs/0"
    assert result.text == "done"


async def test_step_async_function_is_awaited() -> None:
    @accord.step
    async def later(task) -> str:
        await asyncio.sleep(0)
        return task[::-1]

    assert (await accord.Graph("g").add(later).run("abc")).text == "cba"


async def test_step_thread_true_runs_off_the_event_loop_thread() -> None:
    threads: list[threading.Thread] = []

    @accord.step(thread=True)
    def blocking(task) -> str:
        threads.append(threading.current_thread())
        return "ok"

    @accord.step
    def inline(task) -> str:
        threads.append(threading.current_thread())
        return "ok"

    await accord.Graph("g").add(blocking).run("t")
    await accord.Graph("g").add(inline).run("t")

    assert threads[0] is not threading.main_thread()
    assert threads[1] is threading.main_thread()


def test_step_decorator_options_set_name_join_and_timeout() -> None:
    @accord.step(name="renamed", join="any", timeout=1.5)
    def original(task) -> str:
        return task

    assert isinstance(original, accord.Step)
    assert (original.name, original.join, original.timeout) == ("renamed", "any", 1.5)


def test_step_with_text_parameters_accepts_anything() -> None:
    @accord.step
    def mixed(text, critique: accord.Critique) -> str:
        return text

    assert mixed.accepts is None


def test_step_with_unsupported_return_annotation_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="a step must return str or an accord.Payload"):

        @accord.step
        def bad(task) -> dict:
            return {}


async def test_step_returning_a_dict_raises_message_type_error() -> None:
    # T19(b): an undeclared type is an error, never silently dropped.
    @accord.step
    def sloppy(task) -> accord.Verdict:
        return {"accepted": True}  # type: ignore[return-value]

    with pytest.raises(MessageTypeError) as info:
        await accord.Graph("g").add(sloppy).run("t")

    assert (info.value.node, info.value.got, info.value.expected) == ("sloppy", "dict", "Verdict")
    assert info.value.result.status == "failed"


async def test_step_returning_another_payload_type_raises_message_type_error() -> None:
    @accord.step
    def confused(task) -> accord.Verdict:
        return accord.Critique(approved=True)  # type: ignore[return-value]

    with pytest.raises(MessageTypeError, match="declares Verdict but returned Critique"):
        await accord.Graph("g").add(confused).run("t")


async def test_step_declared_str_returning_a_payload_raises_message_type_error() -> None:
    @accord.step
    def wordy(task) -> str:
        return accord.Verdict(accepted=True)  # type: ignore[return-value]

    with pytest.raises(MessageTypeError) as info:
        await accord.Graph("g").add(wordy).run("t")

    assert (info.value.got, info.value.expected) == ("Verdict", "str")


async def test_step_payload_parameter_without_such_input_raises_message_type_error() -> None:
    @accord.step
    def needs_plan(messages, plan: accord.Plan) -> str:
        return "unreachable"

    backend = ScriptedBackend({"writer": ["just text"]})

    with pytest.raises(MessageTypeError, match="needs a Plan for parameter 'plan'") as info:
        await _after(accord.Agent("writer"), needs_plan).run("t", backend=backend)

    assert (info.value.got, info.value.expected) == ("text", "Plan")
