"""accord.verify: examples read from docstrings, programs built from replies, checks run in a
subprocess, behaviour signatures, and model-written tests."""

from __future__ import annotations

import pytest

import accord
from accord.errors import ConfigError
from accord.testing import ScriptedBackend
from accord.verify import (
    CheckResult,
    Example,
    FunctionTask,
    answer_checks,
    as_check_result,
    examples_in,
    function_task,
    probes_for,
    program_from,
    python_checks,
    run_cases,
    written_tests,
)

ADD = '''from typing import List


def add(xs: List[int], k: int) -> List[int]:
    """Add k to every element.
    >>> add([1, 2], 1)
    [2, 3]
    >>> add([], 5)
    []
    """
'''

GOOD = "```python\ndef add(xs, k):\n    return [x + k for x in xs]\n```"
ALSO_GOOD = "Sure:\n```python\ndef add(xs, k):\n    out = []\n    for x in xs:\n        out.append(k + x)\n    return out\n```"
WRONG = "```python\ndef add(xs, k):\n    return [x + k for x in xs[:1]]\n```"


def test_doctest_examples_are_read() -> None:
    fn = function_task(ADD)
    assert fn.entry_point == "add"
    assert examples_in(fn) == [Example("add([1, 2], 1)", "[2, 3]"), Example("add([], 5)", "[]")]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("f(3) ➞ 9", Example("f(3)", "9")),
        ("f(3) ==> True", Example("f(3)", "True")),
        ("f(3) => true", Example("f(3)", "True")),
        ("f(\"ab\") # => 'Yes'", Example('f("ab")', "'Yes'")),
        ("f(5) -> 19 - 5 - 6 = 8", Example("f(5)", "8")),
        ("f(2) == 4", Example("f(2)", "4")),
        ("For n = 5 the output should be 25.", Example("f(5)", "25")),
        ("Input: n = 4\n    Output: 16", Example("f(4)", "16")),
    ],
)
def test_examples_in_words_and_arrows(doc: str, expected: Example) -> None:
    task = f'def f(n):\n    """Square it.\n    {doc}\n    """\n'
    assert examples_in(function_task(task)) == [expected]


def test_prose_is_not_an_example() -> None:
    task = 'def f(n):\n    """f(n) returns the square of n, for example a big one."""\n'
    assert examples_in(function_task(task)) == []


def test_a_doctest_wrapped_in_a_builtin_is_an_example_and_its_probes_keep_the_wrapper() -> None:
    task = (
        'def root(xs: list):\n    """A zero.\n    >>> round(root([1, 2]), 2)  # 1 + 2x\n'
        '    -0.5\n    >>> root([]) == 0\n    True\n    """\n'
    )
    examples = examples_in(function_task(task))
    assert examples == [Example("round(root([1, 2]), 2)", "-0.5"), Example("root([])", "0")]
    probes = {p.call for p in probes_for(examples[:1], "root", limit=50)}
    assert "round(root([2, 1]), 2)" in probes


def test_examples_calling_a_misnamed_function_are_read_as_calls_of_it() -> None:
    task = (
        'def sorted_sum(lst):\n    """Keep even-length words, sorted.\n'
        '    assert list_sort(["aa", "a", "aaa"]) => ["aa"]\n    """\n'
    )
    assert examples_in(function_task(task)) == [Example("sorted_sum(['aa', 'a', 'aaa'])", '["aa"]')]


def test_bare_words_are_strings_when_several_examples_use_them() -> None:
    doc = "    is_happy(a) => False\n    is_happy(abcd) => True\n"
    task = f'def is_happy(s):\n    """Happy strings.\n{doc}    """\n'
    assert examples_in(function_task(task)) == [
        Example("is_happy('a')", "False"),
        Example("is_happy('abcd')", "True"),
    ]
    one = 'def f(n):\n    """f(x) = 0 for the root x; f(s) = 1 where s is the parameter."""\n'
    assert examples_in(function_task(one)) == []


@pytest.mark.parametrize(
    "doc",
    [
        'For s = "abcde", c = "ae", the result should be (\'bcd\', False)',
        'Input:\n        s : "abcde"\n        chars : "ae"\n    Output: (\'bcd\', False)',
    ],
)
def test_examples_with_several_named_inputs(doc: str) -> None:
    task = f'def reverse_delete(s, c):\n    """Delete.\n    {doc}\n    """\n'
    assert examples_in(function_task(task)) == [
        Example('reverse_delete("abcde", "ae")', "('bcd', False)")
    ]


def test_a_docstring_after_an_import_is_read() -> None:
    task = 'def f(n):\n    import math\n    """Square.\n    >>> f(3)\n    9\n    """\n'
    assert examples_in(function_task(task)) == [Example("f(3)", "9")]


async def test_an_unfenced_task_after_prose_is_checked_as_code() -> None:
    task = 'Complete this function.\n\ndef double(x):\n    """Twice x.\n    >>> double(2)\n    4\n    """\n'
    assert function_task(task).preamble == ""
    result = await python_checks()(task, "```python\ndef double(x):\n    return 2 * x\n```")
    assert (result.passed, result.total) == (1, 1)


def test_task_without_a_function_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no Python function"):
        function_task("What is 2 + 2?")


def test_program_keeps_definitions_and_drops_the_models_own_tests() -> None:
    reply = (
        "```python\nimport math\n\ndef add(xs, k):\n    return xs\n\nresult = add([1], 2)\n"
        "print(result)\nassert add([1], 1) == [2]\nif __name__ == '__main__':\n    add([], 1)\n```"
    )
    program = program_from(reply, function_task(ADD))
    assert program.startswith("from typing import List")
    assert "import math" in program and "def add(xs, k)" in program
    assert "print(" not in program and "assert" not in program and "__main__" not in program
    assert "result =" not in program


def test_a_body_only_reply_continues_the_task() -> None:
    fn = FunctionTask(prompt="def f(x):\n    '''doc'''\n", entry_point="f")
    assert program_from("    return x * 2", fn) == "def f(x):\n    '''doc'''\n    return x * 2\n"


def test_probes_change_one_argument_and_repeat_no_example() -> None:
    examples = [Example("f([1, 2], 3)", "x")]
    probes = probes_for(examples, "f", limit=50)
    assert probes and all(p.expected is None for p in probes)
    calls = {p.call for p in probes}
    assert "f([1, 2], 3)" not in calls
    assert "f([1, 2], 4)" in calls and "f([2, 1], 3)" in calls
    assert probes_for(examples, "f", limit=50) == probes  # deterministic


def test_model_written_tests_are_parsed() -> None:
    reply = "```python\nassert f(1) == 2\nassert f(2)==4, 'msg'\nassert g(1) == 3\nassert f(x) == 1\nprint(f(3))\n```"
    assert written_tests(reply, "f") == [Example("f(1)", "2"), Example("f(2)", "4")]


async def test_checks_count_passes_and_say_what_failed() -> None:
    check = python_checks()
    good = await check(ADD, GOOD)
    assert (good.passed, good.total, good.ok) == (2, 2, True)
    bad = await check(ADD, WRONG)
    assert (bad.passed, bad.total, bad.ok) == (1, 2, False)
    assert bad.feedback == "add([1, 2], 1) should return [2, 3], but it returned [2]."


async def test_wrong_answer_feedback_names_input_expected_and_actual() -> None:
    check = python_checks()
    bad = await check(ADD, "```python\ndef add(xs, k):\n    return [x * k for x in xs]\n```")
    assert bad.feedback == "add([1, 2], 1) should return [2, 3], but it returned [1, 2]."


async def test_same_behaviour_same_signature() -> None:
    check = python_checks()
    a, b, c = await check(ADD, GOOD), await check(ADD, ALSO_GOOD), await check(ADD, WRONG)
    assert a.signature == b.signature
    assert a.signature != c.signature


async def test_a_crash_or_syntax_error_is_a_failure_with_its_message() -> None:
    check = python_checks()
    crash = await check(ADD, "```python\nraise SystemExit(3)\ndef add(xs, k): pass\n```")
    assert not crash.ok and crash.passed == 0
    broken = await check(ADD, "```python\ndef add(xs, k)\n    return xs\n```")
    assert broken.passed == 0 and broken.signature is None
    assert "SyntaxError" in broken.feedback


async def test_a_hang_on_one_input_keeps_the_results_before_it() -> None:
    program = "def f(n):\n    while n > 5:\n        pass\n    return n\n"
    cases = [Example("f(1)", "1"), Example("f(9)", "9"), Example("f(2)")]
    outcome = await run_cases(program, cases, timeout=10, per_case=0.5)
    assert outcome[0] == ("1", True)
    assert outcome[1] == ("!TimeoutError", False)
    assert outcome[2] == ("2", None)


async def test_a_tester_writes_weak_tests_for_a_task_without_examples() -> None:
    task = 'def triple(n):\n    """Return three times n."""\n'
    backend = ScriptedBackend(
        {"tester": ["```python\nassert triple(2) == 6\nassert triple(0) == 1\n```"]}
    )
    check = python_checks(tester=backend)
    good = await check(task, "```python\ndef triple(n):\n    return 3 * n\n```")
    again = await check(task, "```python\ndef triple(n):\n    return n + n + n\n```")
    assert (good.total, good.weak_passed, good.weak_total) == (0, 1, 2)
    assert again.signature == good.signature
    assert backend.calls("tester") == 1  # once per task
    prompt = backend.requests[0].messages[-1].content
    assert "triple" in prompt and "assert triple(...) ==" in prompt
    assert backend.requests[0].temperature == 0.0


def test_check_results_from_plain_values() -> None:
    assert as_check_result(True) == CheckResult(passed=1, total=1)
    assert as_check_result(accord.Verdict(accepted=False, reasons=["x"])).feedback == "x"
    assert not CheckResult().ok and CheckResult().rate == 0.0
    with pytest.raises(ConfigError, match="CheckResult"):
        as_check_result(3.5)


async def test_answer_checks_sign_by_answer_and_check_it() -> None:
    def plugs_in(answer: str) -> bool:  # x**2 - 5x + 6 = 0
        x = float(answer)
        return abs(x * x - 5 * x + 6) < 1e-9

    check = answer_checks(plugs_in)
    right = await check("Solve x^2 - 5x + 6 = 0.", "x = 2 works. Answer: 2")
    wrong = await check("Solve x^2 - 5x + 6 = 0.", "Answer: 4")
    none = await check("Solve x^2 - 5x + 6 = 0.", "I do not know.")
    assert (right.ok, right.signature) == (True, "2")
    assert (wrong.ok, wrong.signature) == (False, "4")
    assert not none.ok and none.signature is None


async def test_answer_checks_with_a_verifier_agent() -> None:
    backend = ScriptedBackend(
        {"checker": ['{"accepted": true}', '{"accepted": false, "reasons": ["7 is not a root"]}']}
    )
    verifier = accord.Verifier("checker", backend)
    check = answer_checks(verifier=verifier)
    right = await check("Solve x^2 - 5x + 6 = 0.", "Answer: 3")
    wrong = await check("Solve x^2 - 5x + 6 = 0.", "Answer: 7")
    assert (right.ok, right.signature) == (True, "3")
    assert (wrong.ok, wrong.signature, wrong.total) == (False, "7", 1)
    assert backend.calls("checker") == 2
    with pytest.raises(ConfigError, match="not both"):
        answer_checks(bool, verifier=verifier)


async def test_a_verifier_reply_without_a_rating_leaves_the_answer_unchecked() -> None:
    backend = ScriptedBackend({"checker": ["I cannot tell."]})
    check = answer_checks(verifier=accord.Agent("checker", backend))
    result = await check("What is 2 + 2?", "Answer: 4")
    assert (result.total, result.signature) == (0, "4")
