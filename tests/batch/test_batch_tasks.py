"""Batch tasks: parsing strings and objects, default ids, and errors that name the bad line."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.batch import BatchTask, parse_tasks, read_tasks, run_id_for
from accord.batch._tasks import batch_id_for
from accord.errors import ConfigError


def test_parse_tasks_strings_get_their_position_as_id() -> None:
    tasks = parse_tasks(["a?", {"task": "b?", "id": "q2", "max_steps": 5, "meta": {"gold": 1}}])
    assert tasks == [
        BatchTask(id="1", task="a?"),
        BatchTask(id="q2", task="b?", max_steps=5, meta={"gold": 1}),
    ]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"taks": "x"}, "unknown key(s) 'taks'"),
        ({"id": "a"}, "'task' must be a non-empty string"),
        ({"task": "x", "max_steps": 0}, "'max_steps' must be an integer, 1 or more"),
        ({"task": "x", "id": True}, "'id' must be a non-empty string or an integer"),
        (3, "a task is a string or an object with 'task', not a int"),
        ("  ", "the task is empty"),
    ],
)
def test_parse_tasks_bad_item_names_it(item: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_tasks(["ok", item])
    assert str(info.value).startswith("task 2: ") and message in str(info.value)


def test_read_tasks_bad_json_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text('"a"\n\n{"task": "b"\n')
    with pytest.raises(ConfigError, match=r"t.jsonl line 3 is not JSON"):
        read_tasks(f)


def test_read_tasks_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text('{"id": "q", "task": "a"}\n{"id": "q", "task": "b"}\n')
    with pytest.raises(ConfigError, match=r"line 2: id 'q' is already used by line 1"):
        read_tasks(f)


def test_read_tasks_blank_lines_keep_line_numbers_as_ids(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text('"a"\n\n"b"\n')
    assert [t.id for t in read_tasks(f)] == ["1", "3"]


def test_run_id_for_is_stable_and_distinct() -> None:
    tasks = parse_tasks(["a", "b"])
    bid = batch_id_for("g", tasks)
    assert bid == batch_id_for("g", parse_tasks(["a", "b"])) != batch_id_for("h", tasks)
    assert run_id_for(bid, "1") == run_id_for(bid, "1") != run_id_for(bid, "2")
