"""Checks for "write this Python function" tasks: run each candidate on the task's own examples
and on extra inputs, in a limited subprocess (:func:`accord.tools.python_exec`).

- **Examples** are read from the function's docstring in the task: doctest lines
  (``>>> f(1)`` then the expected value) and one-line forms ``f(1) == 2``, ``f(1) ➞ 2``,
  ``f(1) -> 2``, ``f(1) => 2``, ``f(1) = 2``, ``f(1) should return 2``; a doctest around one
  call (``>>> round(f([1, 2]), 2)``); told in words ("For s = "ab", c = "a", the result should
  be ..."; "Input:" then ``name = value`` or ``name : value`` lines, then "Output: ...");
  several bare-word arguments read as strings (``f(abc) => True``); and, when no example calls
  the function by name, examples calling one undefined name (a docstring that misnames it).
  They are trusted checks.
- **Probes** are extra inputs made by changing the examples' literal arguments (numbers nudged,
  strings and lists shortened, reversed or extended). A probe has no expected value; its output
  only joins the candidate's behaviour *signature*, so candidates that agree on every input
  cluster together (AlphaCode's clustering, arXiv 2203.07814).
- **Tests a model wrote** (``assert f(...) == ...`` lines, from a tester agent) can be added per
  task; they count as weak checks (CodeT's dual agreement, arXiv 2207.10397) and their inputs
  join the probes.

Caveat: examples are compared with ``==`` (floats within 1e-6); an example whose expected value
is not a Python expression (prose) is skipped. The subprocess limits of ``python_exec`` apply;
they are not a security sandbox.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import hashlib
import inspect
import json
import keyword
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from accord.errors import ConfigError
from accord.tools import python_exec
from accord.verify._result import CheckResult

__all__ = [
    "Example",
    "FunctionTask",
    "function_task",
    "program_from",
    "examples_in",
    "probes_for",
    "written_tests",
    "run_cases",
    "python_checks",
]

_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.S)
_ARROWS = (
    "==>",
    "==",
    "➞",
    "->",
    "=>",
    "should return",
    "returns",
    "should be",
    "is",
    "=",
)
_INPUT = re.compile(r"^(?:for\s+|input\s*:\s*)(.*)$", re.I)
_OUTPUT = re.compile(
    r"(?:the )?(?:output|result) (?:should be|will be|is)\s*:?\s*(.+)$|^output\s*:\s*(.+)$", re.I
)
_MARK = "@@accord-cases@@"
_BUILTINS = frozenset(dir(builtins))
_WRAPPERS = frozenset(
    {"abs", "all", "any", "bool", "float", "int", "len", "list", "max", "min", "round"}
    | {"set", "sorted", "str", "sum", "tuple"}
)


@dataclass(frozen=True, slots=True)
class Example:
    """One call of the function, with its expected value (None: a probe, no expectation)."""

    call: str
    expected: str | None = None


@dataclass(frozen=True, slots=True)
class FunctionTask:
    """The function a task asks for: its code so far (imports, helpers, signature, docstring)
    and its name."""

    prompt: str
    entry_point: str

    @property
    def preamble(self) -> str:
        """The task's code before the function: imports and helpers a candidate may rely on
        (empty when that text is not Python)."""
        match = re.search(rf"^def {re.escape(self.entry_point)}\s*\(", self.prompt, re.M)
        before = self.prompt[: match.start()] if match else ""
        try:
            ast.parse(before)
        except SyntaxError:
            return ""
        return before


def _code_of(text: str) -> str:
    """The code in ``text``: its fenced block holding a ``def`` (the longest), else the text."""
    blocks = [b for b in _FENCE.findall(text) if "def " in b]
    return max(blocks, key=len) if blocks else text


def function_task(task: str, entry_point: str | None = None) -> FunctionTask:
    """The function a task text asks for: the code in it (a fenced block, else the text from its
    first line of code on) and its last top-level ``def`` (or ``entry_point``).

    Raises:
        ConfigError: the task holds no function definition.
    """
    code = _code_of(task)
    first = re.search(r"^(?:import |from \S+ import |def |async def |class |@)", code, re.M)
    if first is not None:  # "Complete this function:" then unfenced code
        code = code[first.start() :]
    names = re.findall(r"^def ([A-Za-z_]\w*)\s*\(", code, re.M)
    if entry_point is None:
        if not names:
            raise ConfigError(
                "python_checks: the task holds no Python function definition ('def name(...)'); "
                "put the function's signature and docstring in the task or pass entry_point=."
            )
        entry_point = names[-1]
    return FunctionTask(prompt=code, entry_point=entry_point)


def _definitions(code: str) -> str:
    """``code`` without its top-level statements that run something (calls, asserts, prints,
    ``if __name__ == ...`` blocks): a model's own tests must not decide whether its function
    works. Imports, definitions and assignments stay; code that does not parse is kept whole."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    kept = (
        ast.Import,
        ast.ImportFrom,
        ast.FunctionDef,
        ast.AsyncFunctionDef,
        ast.ClassDef,
        ast.Assign,
        ast.AnnAssign,
    )
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    lines = code.splitlines()
    parts = []
    for node in tree.body:
        runs = isinstance(node, ast.Assign | ast.AnnAssign) and any(  # result = f(...)
            isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in defined
            for n in ast.walk(node)
        )
        if isinstance(node, kept) and not runs:
            start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            parts.append("\n".join(lines[start - 1 : node.end_lineno]))
    return "\n".join(parts) if parts else code


def program_from(reply: str, task: FunctionTask) -> str:
    """A runnable program from a model's reply: the task's preamble (imports, helpers) and the
    reply's definitions (its own test calls dropped); a reply that continues the function body
    is appended to the task's code."""
    code = _code_of(reply).strip("\n")
    if re.search(rf"^\s*def {re.escape(task.entry_point)}\s*\(", code, re.M):
        return f"{task.preamble}{_definitions(code)}\n"
    return f"{task.prompt.rstrip()}\n{code}\n"


def _docstring(task: FunctionTask) -> str:
    try:
        tree = ast.parse(
            task.prompt + ("\n    pass\n" if task.prompt.rstrip().endswith('"""') else "")
        )
    except SyntaxError:
        return task.prompt
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == task.entry_point:
            for stmt in node.body:  # the docstring, or a string after an import
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                    if isinstance(stmt.value.value, str):
                        return inspect.cleandoc(stmt.value.value)
            return ""
    return task.prompt


def _balanced_call(line: str, name: str) -> tuple[str, str] | None:
    """``name(...)`` at the start of ``line`` (after spaces) and the rest of the line."""
    start = line.find(name + "(")
    if start < 0 or (start > 0 and (line[start - 1].isalnum() or line[start - 1] in "_.")):
        return None
    depth, quote = 0, ""
    for i in range(start + len(name), len(line)):
        ch = line[i]
        if quote:
            if ch == quote and line[i - 1] != "\\":
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return line[start : i + 1], line[i + 1 :]
    return None


def _literal_text(text: str) -> str | None:
    text = text.strip().rstrip(".,;")
    if not text:
        return None
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return text


def _expression(text: str) -> str | None:
    """An expected value: a Python literal, read forgivingly (``true``, a trailing remark in
    parentheses or after ``#``, a worked sum ending ``= 8``)."""
    text = text.strip().lstrip("#").strip()
    for arrow in ("=>", "->", "➞"):
        if text.startswith(arrow):
            text = text[len(arrow) :].strip()
    text = {"true": "True", "false": "False", "none": "None"}.get(text.rstrip(".,;").lower(), text)
    found = _literal_text(text)
    if found is not None:
        return found
    if "=" in text and _literal_text(text.split("=")[0]) is None:  # "19 - 5 - 6 = 8"
        return _literal_text(text.rsplit("=", 1)[1])
    words = text.split()
    for end in range(len(words) - 1, 0, -1):  # the longest leading literal: "'No' (because...)"
        found = _literal_text(" ".join(words[:end]))
        if found is not None:
            return found
    return None


def _parameters(task: FunctionTask) -> list[str]:
    match = re.search(rf"^def {re.escape(task.entry_point)}\s*\((.*?)\)", task.prompt, re.M | re.S)
    if match is None:
        return []
    names = []
    for part in match.group(1).split(","):
        name = part.split(":")[0].split("=")[0].strip().lstrip("*")
        if name.isidentifier():
            names.append(name)
    return names


def _assigned_call(text: str, task: FunctionTask) -> str | None:
    """``n = 5`` / ``grid = [[1]], k = 3`` / ``grid : [[1]]`` (an "Input:" or "For ..." text)
    as a call: values matched to the parameters by name, else in order when there are as many
    values as parameters."""
    params = _parameters(task)
    named = _assignments(text)
    if not params or not named:
        return None
    if set(params) <= set(named):
        values = [named[p] for p in params]
    elif len(named) == len(params):
        values = list(named.values())
    else:
        return None
    call = f"{task.entry_point}({', '.join(values)})"
    return call if _valid_call(call) else None


def _assignments(text: str) -> dict[str, str]:
    """``name = value`` or ``name : value`` pairs (values Python literals), in order."""
    marks = list(re.finditer(r"(?<![\w'\"])([A-Za-z_]\w*)\s*[:=]\s*(?!=)", text))
    ends = [m.start() for m in marks[1:]] + [len(text)]  # a value runs to the next name
    found: dict[str, str] = {}
    for mark, end in zip(marks, ends[: len(marks)], strict=True):
        value = text[mark.end() : end].strip().rstrip(",;").strip()
        if value.lower().endswith(" and"):
            value = value[:-4]
        literal = _literal_text(value)
        if literal is None:  # the value runs on into prose: its longest literal start
            for cut in range(len(value), 0, -1):
                if value[cut - 1] in ",) ]}'\"0123456789":
                    literal = _literal_text(value[:cut])
                    if literal is not None:
                        break
        if literal is None:
            return {}
        found[mark.group(1)] = literal
    return found


def _valid_call(call: str) -> bool:
    try:
        node = ast.parse(call, mode="eval").body
    except SyntaxError:
        return False
    return isinstance(node, ast.Call) and all(
        _literal(a) for a in [*node.args, *(k.value for k in node.keywords)]
    )


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def examples_in(task: FunctionTask) -> list[Example]:
    """The worked examples in the function's docstring (see the module docstring). When none
    calls the function by its name, examples calling one other, undefined name are read as
    calls of the function (a docstring that misnames it)."""
    lines = _docstring(task).splitlines()
    found = _examples_calling(task.entry_point, lines, task)
    if found:
        return found
    for alias in _aliases(lines, task):
        renamed = [
            Example(_renamed(e.call, alias, task.entry_point), e.expected)
            for e in _examples_calling(alias, lines, task)
        ]
        if renamed:
            return renamed
    return []


def _aliases(lines: list[str], task: FunctionTask) -> list[str]:
    """Names called at the start of docstring lines that nothing defines (most used first)."""
    defined = set(re.findall(r"^\s*(?:async\s+)?def ([A-Za-z_]\w*)", task.prompt, re.M))
    counts: dict[str, int] = {}
    for line in lines:
        match = re.match(r"\s*(?:>>>\s*|assert\s+)?([A-Za-z_]\w*)\(", line)
        if match is None:
            continue
        name = match.group(1)
        if name in defined or name in _BUILTINS or keyword.iskeyword(name):
            continue
        counts[name] = counts.get(name, 0) + 1
    return sorted(counts, key=lambda n: -counts[n])


def _renamed(call: str, old: str, new: str) -> str:
    tree = ast.parse(call, mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == old:
            node.id = new
    return ast.unparse(tree)


def _examples_calling(name: str, lines: list[str], task: FunctionTask) -> list[Example]:
    found: list[Example] = []
    worded: set[str] = set()  # calls whose bare-word arguments were read as strings
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        doctest = line.startswith(">>>")
        if doctest:
            line = line[3:].strip()
            wrapped = _wrapped_call(line, name)
            if wrapped is not None and i < len(lines):  # >>> round(f(x), 2)
                value = _expression(lines[i].strip())
                if value is not None and all(e.call != wrapped for e in found):
                    found.append(Example(wrapped, value))
                    i += 1
                continue
        parsed = _balanced_call(line, name)
        if parsed is not None and not _valid_call(parsed[0]):
            quoted = _quoted_words(parsed[0], task)
            if quoted is not None:
                worded.add(quoted)
                parsed = (quoted, parsed[1])
        if parsed is None or not _valid_call(parsed[0]):
            described = _described(line, lines, i, task)
            if described is not None and all(e.call != described.call for e in found):
                found.append(described)
            continue
        call, rest = parsed
        expected: str | None = None
        if doctest and not rest.strip():
            out: list[str] = []
            while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(">>>"):
                out.append(lines[i].strip())
                i += 1
            expected = _expression(" ".join(out))
        else:
            rest = rest.strip().lstrip("#").strip()
            for arrow in _ARROWS:
                if rest.lower().startswith(arrow):
                    expected = _expression(rest[len(arrow) :])
                    break
            if expected is None and not rest and i < len(lines):
                nxt = lines[i].strip()
                for arrow in _ARROWS:
                    if nxt.lower().startswith(arrow):
                        expected = _expression(nxt[len(arrow) :])
                        i += 1
                        break
        if expected is not None and all(e.call != call for e in found):
            found.append(Example(call, expected))
    if len(worded & {e.call for e in found}) < 2:  # one bare word may be prose: "f(x) = 0"
        found = [e for e in found if e.call not in worded]
    return found


def _wrapped_call(line: str, name: str) -> str | None:
    """A doctest expression around one call of ``name`` with literal arguments, built only from
    harmless builtins (``round(f([1, 2]), 2)``, ``sorted(f(3))``), normalised; None for a
    plain call (read as usual) or anything else."""
    try:
        tree = ast.parse(line, mode="eval")
    except SyntaxError:
        return None
    calls = _calls_of(tree, name)
    outer = tree.body
    if not (
        len(calls) == 1
        and isinstance(outer, ast.Call)
        and isinstance(outer.func, ast.Name)
        and outer.func.id in _WRAPPERS
        and not any(isinstance(n, ast.Compare | ast.BoolOp) for n in ast.walk(tree))
    ):
        return None
    if not all(_literal(a) for a in [*calls[0].args, *(k.value for k in calls[0].keywords)]):
        return None
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    if not names <= {name, *_WRAPPERS}:
        return None
    return ast.unparse(tree)


def _calls_of(tree: ast.AST, name: str) -> list[ast.Call]:
    """The calls of the plain name ``name`` in ``tree``."""
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
    ]


def _quoted_words(call: str, task: FunctionTask) -> str | None:
    """``f(abcd)`` as ``f('abcd')``: bare words that are not the function's parameters, in a
    call whose other arguments are literals; None when it is not such a call."""
    try:
        node = ast.parse(call, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(node, ast.Call) or node.keywords or not node.args:
        return None
    params = set(_parameters(task))
    args: list[str] = []
    for arg in node.args:
        if isinstance(arg, ast.Name) and arg.id not in params:
            args.append(repr(arg.id))
        elif _literal(arg):
            args.append(ast.unparse(arg))
        else:
            return None
    if not any(isinstance(a, ast.Name) for a in node.args):
        return None
    return f"{ast.unparse(node.func)}({', '.join(args)})"


def _described(line: str, lines: list[str], i: int, task: FunctionTask) -> Example | None:
    """An example told in words: "For n = 5 the output should be 1", or an "Input: ..." line
    followed by an "Output: ..." line."""
    match = _INPUT.match(line)
    if match is None:
        return None
    text = match.group(1)
    if not text.strip():  # "Input:" then one "name : value" line per parameter
        given: list[str] = []
        while i < len(lines) and lines[i].strip() and not _OUTPUT.search(lines[i].strip()):
            given.append(lines[i].strip())
            i += 1
        text = ", ".join(given)
    out = _OUTPUT.search(text)
    expected_text = None
    if out is not None:
        expected_text = out.group(1) or out.group(2)
        text = text[: out.start()]
    elif i < len(lines):
        nxt = _OUTPUT.search(lines[i].strip())
        if nxt is not None:
            expected_text = nxt.group(1) or nxt.group(2)
    if expected_text is None:
        return None
    call = _assigned_call(text, task)
    if call is None and len(_parameters(task)) == 1:
        value = _literal_text(text.strip().rstrip(".,"))
        call = f"{task.entry_point}({value})" if value is not None else None
    expected = _expression(expected_text)
    if call is None or expected is None or not _valid_call(call):
        return None
    return Example(call, expected)


def written_tests(text: str, entry_point: str) -> list[Example]:
    """``assert f(...) == value`` lines in a model's reply, as examples (weak checks)."""
    found: list[Example] = []
    for raw in _code_of(text).splitlines():
        try:
            tree = ast.parse(raw.strip())
        except SyntaxError:
            continue
        stmt = tree.body[0] if len(tree.body) == 1 else None
        if not (
            isinstance(stmt, ast.Assert)
            and isinstance(stmt.test, ast.Compare)
            and len(stmt.test.ops) == 1
            and isinstance(stmt.test.ops[0], ast.Eq)
        ):
            continue
        call, expected = ast.unparse(stmt.test.left), ast.unparse(stmt.test.comparators[0])
        if (
            call.startswith(entry_point + "(")
            and _valid_call(call)
            and _expression(expected) is not None
            and all(e.call != call for e in found)
        ):
            found.append(Example(call, expected))
    return found


def _mutations(value: object, rng: random.Random) -> list[object]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1, value * 2 + 3, 0, -value if value else 7]
    if isinstance(value, float):
        return [value * 1.5 + 0.25, -value, 0.0, round(value + 1.1, 3)]
    if isinstance(value, str):
        out: list[object] = [
            value[::-1],
            value[: len(value) // 2],
            value + value[-1:] if value else "a",
        ]
        if value:
            chars = list(value)
            rng.shuffle(chars)
            out.append("".join(chars))
        return out
    if isinstance(value, list):
        out = [value[::-1], value[:-1], value + value[-1:] if value else [], []]
        if value:
            shuffled = list(value)
            rng.shuffle(shuffled)
            out.append(shuffled)
        return out
    if isinstance(value, tuple):
        return [tuple(v) for v in _mutations(list(value), rng) if isinstance(v, list)]
    return []


def probes_for(
    examples: Sequence[Example], entry_point: str, limit: int = 12, seed: int = 0
) -> list[Example]:
    """Extra calls made by changing one literal argument of an example at a time (deterministic
    for a given ``seed``); none of them repeats an example's call."""
    rng = random.Random(seed)
    seen = {e.call for e in examples}
    pool: list[str] = []
    for example in examples:
        tree = ast.parse(example.call, mode="eval")
        calls = _calls_of(tree, entry_point)
        if not calls:
            continue
        node = calls[0]
        wrapped = ast.unparse(node) if node is not tree.body else None  # round(f(x), 2)
        args = [ast.literal_eval(a) for a in node.args]
        for position, value in enumerate(args):
            for changed in _mutations(value, rng):
                new_args = [*args[:position], changed, *args[position + 1 :]]
                call = f"{entry_point}({', '.join(repr(a) for a in new_args)})"
                if wrapped is not None:  # the same wrapper around the changed call
                    call = example.call.replace(wrapped, call, 1)
                if call not in seen and len(call) < 2000:
                    seen.add(call)
                    pool.append(call)
    rng.shuffle(pool)
    return [Example(call) for call in pool[:limit]]


_HARNESS = """
import json as _j, math as _m, signal as _s, sys as _sys
_sys.setrecursionlimit(3000)
def _alarm(*_):
    raise TimeoutError("timed out")
_s.signal(_s.SIGALRM, _alarm)
def _same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        try:
            return _m.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
        except TypeError:
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return type(a) is type(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b
for _call, _exp in {cases}:
    _s.setitimer(_s.ITIMER_REAL, {per_case})
    try:
        _got = eval(_call)
        _s.setitimer(_s.ITIMER_REAL, 0)
        _r = repr(_got)[:400]
        _ok = None if _exp is None else bool(_same(_got, eval(_exp)))
    except BaseException as _e:
        _s.setitimer(_s.ITIMER_REAL, 0)
        _r = "!" + type(_e).__name__
        _ok = None if _exp is None else False
    print({mark!r} + _j.dumps([_r, _ok]), flush=True)
"""


async def run_cases(
    program: str,
    cases: Sequence[Example],
    *,
    timeout: float = 10.0,  # noqa: ASYNC109
    per_case: float = 1.0,
) -> list[tuple[str, bool | None]] | str:
    """Run ``program`` then each case's call in one subprocess.

    Returns:
        ``(repr of the result or "!ErrorName", passed or None for a probe)`` per case, or the
        error text when the program itself does not run (syntax error, crash, timeout). Cases
        the process did not reach (it ran out of time or crashed) read ``"!Timeout"``.
    """
    harness = _HARNESS.format(
        cases=repr([(c.call, c.expected) for c in cases]), per_case=per_case, mark=_MARK
    )
    result = await python_exec(program + "\n" + harness, timeout=timeout, max_output_chars=200_000)
    done = [
        json.loads(line[len(_MARK) :])
        for line in result.stdout.splitlines()
        if line.startswith(_MARK)
    ]
    if done:  # cases after the last one reported ran out of time or crashed the process
        missing = [("!Timeout", None if c.expected is None else False) for c in cases[len(done) :]]
        return [(str(r), ok) for r, ok in done] + missing
    if result.timed_out:
        return f"the program did not finish within {timeout} s"
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"the program exited with status {result.exit_code}"


_TESTER_PROMPT = """Here is a Python function to test:

```python
{prompt}
```

Write {count} test cases for `{name}` as assert lines of the form `assert {name}(...) == ...`, one
per line, in one ```python code block. Use small, simple inputs and work out each expected value
carefully from the description."""


async def _ask_tester(tester: Any, task: FunctionTask, count: int) -> str:
    """One call to the tester model, through the running graph when there is one (so budgets
    and usage count it)."""
    from accord.agents import Agent
    from accord.backends import backend as resolve
    from accord.backends.base import Backend, ChatMessage, Request
    from accord.runtime import current_context

    system = ""
    model: Backend | None
    if isinstance(tester, Agent):
        model, system = tester.backend, tester.instructions
    elif isinstance(tester, str):
        model = resolve(tester)
    else:
        model = tester
    user = _TESTER_PROMPT.format(prompt=task.prompt.strip(), name=task.entry_point, count=count)
    messages = (
        *((ChatMessage(role="system", content=system),) if system else ()),
        ChatMessage(role="user", content=user),
    )
    request = Request(messages=messages, temperature=0.0, agent="tester")
    ctx = current_context()
    if ctx is not None:
        completion = await ctx.complete(request, model)
    elif model is None:
        raise ConfigError("python_checks: the tester has no backend; give it one.")
    else:
        completion = await model.complete(request)
    return completion.text


def python_checks(
    entry_point: str | None = None,
    *,
    probes: int = 12,
    tester: Any = None,
    min_examples: int = 2,
    tests: int = 5,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> Callable[[str, str], Awaitable[CheckResult]]:
    """A checker (``check(task, reply) -> CheckResult``) for "write this Python function" tasks.

    It builds a program from the reply (:func:`program_from`), runs it on the docstring's
    examples (trusted checks), on ``probes`` changed inputs (behaviour only), and, for a task
    with fewer than ``min_examples`` examples, on tests a ``tester`` model wrote (weak checks;
    their inputs join the probes), and returns the counts, a behaviour signature and the first
    concrete failure as feedback. The examples, probes and tests of a task are worked out once
    per checker.

    Args:
        entry_point: the function's name (the task's last ``def`` when None).
        probes: extra inputs per task for the behaviour signature (0: examples only).
        tester: an Agent, backend or ``"provider:model"`` name asked (at temperature 0) for
            ``tests`` assert lines; its call counts in the run it is made in. None: no tests.
        min_examples: ask the tester only for tasks with fewer examples than this.
        tests: how many tests to ask for.
        timeout: seconds one candidate's subprocess may take.
    """
    prepared: dict[
        str, asyncio.Future[tuple[FunctionTask, list[Example], list[Example], list[Example]]]
    ] = {}

    async def prepare(
        task: str,
    ) -> tuple[FunctionTask, list[Example], list[Example], list[Example]]:
        fn = function_task(task, entry_point)
        examples = examples_in(fn)
        written: list[Example] = []
        if tester is not None and len(examples) < min_examples:
            written = written_tests(await _ask_tester(tester, fn, tests), fn.entry_point)
        shown = {e.call for e in (*examples, *written)}
        extra = [
            p
            for p in probes_for([*examples, *written], fn.entry_point, probes)
            if p.call not in shown
        ]
        return fn, examples, written, extra

    async def check(task: str, reply: str) -> CheckResult:
        if task not in prepared:  # once per task, even when candidates are checked at once
            prepared[task] = asyncio.ensure_future(prepare(task))
        try:
            fn, examples, weak, extra = await asyncio.shield(prepared[task])
        except BaseException:
            if prepared[task].done():
                prepared.pop(task, None)  # a failed tester call is tried again next time
            raise
        cases = [*examples, *weak, *extra]
        outcome = await run_cases(program_from(reply, fn), cases, timeout=timeout)
        if isinstance(outcome, str):
            return CheckResult(
                total=len(examples), weak_total=len(weak), feedback=f"The code fails: {outcome}"
            )
        trusted = outcome[: len(examples)]
        soft = outcome[len(examples) : len(examples) + len(weak)]
        feedback = ""
        for example, (got, ok) in zip(examples, trusted, strict=True):
            if not ok:
                shown = f"raised {got[1:]}" if got.startswith("!") else f"returned {got}"
                feedback = f"{example.call} should return {example.expected}, but it {shown}."
                break
        signature = hashlib.sha256(json.dumps([got for got, _ in outcome]).encode()).hexdigest()[
            :16
        ]
        return CheckResult(
            passed=sum(1 for _, ok in trusted if ok),
            total=len(examples),
            weak_passed=sum(1 for _, ok in soft if ok),
            weak_total=len(weak),
            signature=signature,
            feedback=feedback,
        )

    return check
