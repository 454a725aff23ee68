"""A structured reply cut at the token limit is re-asked like an invalid one (found by the
real-model benchmark: a judge of a 20-at-once judge panel ran to the end of its context)."""

from __future__ import annotations

import pytest

import accord
from accord.errors import NodeError, OutputValidationError, TruncatedOutputError
from accord.testing import ScriptedBackend


def cut(text: str) -> TruncatedOutputError:
    return TruncatedOutputError("stopped at the token limit", partial_text=text)


async def test_a_cut_structured_reply_is_re_asked() -> None:
    backend = ScriptedBackend(
        {"judge": [cut('{"accepted": true, "reasons": ["a", "a", "a'), '{"accepted": true}']}
    )
    judge = accord.Agent("judge", backend, output=accord.Verdict)
    result = await judge.run("Is 2 + 2 = 4?")
    assert isinstance(result.output.payload, accord.Verdict) and result.output.payload.accepted
    assert backend.calls("judge") == 2
    follow_up = backend.requests[1].messages[-1].content
    assert "cut off at the token limit" in follow_up


async def test_cut_replies_use_up_the_re_asks() -> None:
    backend = ScriptedBackend({"judge": [cut("{"), cut("{"), cut("{")]})
    judge = accord.Agent("judge", backend, output=accord.Verdict, reasks=2)
    with pytest.raises((OutputValidationError, NodeError)) as info:
        await judge.run("Is 2 + 2 = 4?")
    error = info.value if isinstance(info.value, OutputValidationError) else info.value.__cause__
    assert isinstance(error, OutputValidationError) and "token limit" in str(error)
    assert backend.calls("judge") == 3


async def test_a_cut_plain_text_reply_still_raises() -> None:
    backend = ScriptedBackend({"writer": [cut("once upon")]})
    with pytest.raises((TruncatedOutputError, NodeError)):
        await accord.Agent("writer", backend).run("Write a story.")
    assert backend.calls("writer") == 1
