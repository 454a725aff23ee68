"""HFBackend on a tiny random Llama loaded by folder: generation, prompts, stops, streaming,
batching, errors. (Logits operations: test_hf_logits.py; tiny builders: test_hf_tiny.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import _hf_fixtures` from any layout

from _hf_fixtures import (  # noqa: E402
    allow_real,
    ask,
    direct_generate,
    plain_dir,
    tiny_dir,
    torch,
)

import accord.backends  # noqa: E402
from accord.backends.base import Backend, LogitsBackend  # noqa: E402
from accord.backends.hf import HFBackend  # noqa: E402
from accord.errors import (  # noqa: E402
    ConfigError,
    ProviderError,
    ProviderRequestError,
    UsageError,
)
from accord.testing import forbid_real_backends  # noqa: E402

__all__ = ["allow_real", "plain_dir", "tiny_dir"]  # fixtures used by name

pytestmark = pytest.mark.usefixtures("allow_real")

PROMPTS = [
    "hello",
    "What is 2+2?",
    "abc",
    "Write a haiku about the sea, please.",
    "x",
    "Debate: is tea better than coffee?",
    "0123456789",
    "é ✓ ü",
]


@pytest.fixture
async def backend(tiny_dir: Path) -> AsyncIterator[HFBackend]:
    b = HFBackend(str(tiny_dir))
    await b.load()
    yield b
    b.close()


# ------------------------------------------------------------ construction


def test_import_accord_backends_hf_does_not_import_torch() -> None:
    code = (
        "import sys, accord, accord.backends, accord.backends.hf, accord._tiny;"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_hfbackend_missing_folder_raises_config_error_naming_both_fixes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        HFBackend(str(tmp_path / "nowhere" / "model"))
    message = str(info.value)
    assert "does not exist" in message
    assert "hf:./path/to/model" in message
    assert "openai:NAME" in message and "--base-url" in message


def test_hfbackend_offline_hub_id_raises_config_error_not_oserror(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import huggingface_hub
    from huggingface_hub import constants

    model = "Qwen/Qwen2.5-0.5B-Instruct"
    if isinstance(huggingface_hub.try_to_load_from_cache(model, "config.json"), str):
        pytest.skip("the default model is in this machine's hub cache")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError) as info:
        accord.backends.backend(f"hf:{model}")
    message = str(info.value)
    assert model in message and "offline" in message
    assert "hf:./path/to/model" in message and "openai:NAME" in message


def test_hfbackend_folder_without_config_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no config.json"):
        HFBackend(str(tmp_path))


async def test_hfbackend_unloadable_folder_raises_config_error_on_load(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "no-such-architecture"}')
    backend = HFBackend(str(tmp_path))
    with pytest.raises(ConfigError, match="cannot load folder") as info:
        await backend.load()
    assert isinstance(info.value.__cause__, OSError | ValueError | KeyError)
    with pytest.raises(ConfigError):
        await backend.complete(ask("hi"))


@pytest.mark.parametrize(
    "options",
    [{"device": "tpu9"}, {"dtype": "float8"}, {"max_batch_size": 0}, {"max_wait_ms": -1}],
)
def test_hfbackend_bad_option_raises_config_error(tiny_dir: Path, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        HFBackend(str(tiny_dir), **options)


async def test_hfbackend_picks_cpu_float32_and_honours_given_dtype(tiny_dir: Path) -> None:
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("automatic choice differs on an accelerator")
    auto = HFBackend(str(tiny_dir))
    assert (auto.device.type, auto.dtype) == ("cpu", torch.float32)
    given = HFBackend(str(tiny_dir), dtype="bfloat16")
    await given.load()
    assert next(given.hf_model.parameters()).dtype == torch.bfloat16
    completion = await given.complete(ask("hi", max_tokens=3))
    assert completion.usage.completion_tokens >= 1


def test_registry_shares_one_instance_per_model_and_options(tiny_dir: Path) -> None:
    first = accord.backends.backend(f"hf:{tiny_dir}")
    assert accord.backends.backend(f"hf:{tiny_dir}") is first
    assert accord.backends.backend(f"hf:{tiny_dir}", max_batch_size=2) is not first
    assert isinstance(first, Backend) and isinstance(first, LogitsBackend)
    assert first.capabilities.logits and first.capabilities.n


async def test_complete_raises_usage_error_when_real_backends_forbidden(tiny_dir: Path) -> None:
    backend = HFBackend(str(tiny_dir))
    with forbid_real_backends(), pytest.raises(UsageError, match="forbidden"):
        await backend.complete(ask("hi"))
    assert not backend.loaded


@pytest.mark.parametrize(
    "options", [{"temperature": -1.0}, {"top_p": 0.0}, {"n": 0}, {"max_tokens": 0}]
)
async def test_complete_invalid_sampling_option_raises_config_error(
    backend: HFBackend, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError):
        await backend.complete(ask("hi", **options))


# -------------------------------------------------------------- generation


async def test_complete_greedy_equals_direct_generate_with_usage(backend: HFBackend) -> None:
    request = ask("What is 2+2?", max_tokens=12)
    completion = await backend.complete(request)
    expected = direct_generate(backend, request, 12)
    ends = [i for i, t in enumerate(expected) if t in backend.eos_token_ids]
    content = expected[: ends[0]] if ends else expected
    assert completion.text == backend.decode(content)
    assert completion.finish_reason == ("stop" if ends else "length")
    assert completion.usage.completion_tokens == (ends[0] + 1 if ends else 12)
    assert completion.usage.prompt_tokens == len(backend.encode(backend.chat_prompt(request)))
    assert completion.usage.requests == 1 and completion.usage.cost == 0.0
    assert completion.model == backend.model


async def test_chat_prompt_uses_the_tokenizers_chat_template(backend: HFBackend) -> None:
    request = ask("hi there", system="be brief")
    prompt = backend.chat_prompt(request)
    assert prompt == (
        "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi there<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    completion = await backend.complete(request.model_copy(update={"max_tokens": 2}))
    assert completion.usage.prompt_tokens == len(backend.encode(prompt))


async def test_chat_prompt_without_template_is_the_text_as_it_is(plain_dir: Path) -> None:
    backend = HFBackend(str(plain_dir))
    assert backend.chat_prompt(ask("123+456=")) == "123+456="
    request = ask("hi there", system="be brief", max_tokens=4)
    assert backend.chat_prompt(request) == "be brief\n\nhi there"
    completion = await backend.complete(request)
    assert completion.usage.prompt_tokens == len("be brief\n\nhi there")


async def test_response_schema_appends_instructions_to_system_message(backend: HFBackend) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    with_system = backend.chat_prompt(ask("2+2?", system="You add.", response_schema=schema))
    assert with_system.startswith("<|im_start|>system\nYou add.\n\nReply with one JSON object")
    assert '"answer"' in with_system
    without = backend.chat_prompt(ask("2+2?", response_schema=schema))
    assert without.startswith("<|im_start|>system\nReply with one JSON object")


async def _reference_text(backend: HFBackend, prompt: str, tokens: int) -> str:
    text = (await backend.complete(ask(prompt, max_tokens=tokens))).text
    assert len(text) >= 6, "the tiny model should write something to cut"
    return text


def _stop_inside(text: str) -> str:
    """A two-character stop string that first occurs after the start of ``text``."""
    for i in range(2, len(text) - 1):
        stop = text[i : i + 2]
        if "\ufffd" not in stop and text.find(stop) == i:
            return stop
    pytest.fail(f"no usable stop string in {text!r}")


async def test_stop_string_cuts_text_before_it_and_reports_stop(backend: HFBackend) -> None:
    text = await _reference_text(backend, "Debate: is tea better than coffee?", 24)
    stop = _stop_inside(text)
    completion = await backend.complete(
        ask("Debate: is tea better than coffee?", max_tokens=24, stop=(stop, "\x00never"))
    )
    assert completion.text == text[: text.index(stop)]
    assert completion.finish_reason == "stop"
    assert completion.usage.completion_tokens < 24


async def test_max_tokens_reached_without_eos_reports_length(backend: HFBackend) -> None:
    completion = await backend.complete(ask("abc", max_tokens=3))
    if completion.usage.completion_tokens == 3 and completion.finish_reason == "stop":
        pytest.fail("a row cut by max_tokens must report 'length'")
    assert completion.finish_reason == "length"
    assert completion.usage.completion_tokens == 3


async def test_stream_deltas_join_to_the_complete_text(backend: HFBackend) -> None:
    request = ask("Write a haiku about the sea, please.", max_tokens=16)
    expected = await backend.complete(request)
    deltas = [d async for d in backend.stream(request)]
    assert sum(1 for d in deltas if d.text) > 1
    assert "".join(d.text for d in deltas) == expected.text
    assert deltas[-1].finish_reason == expected.finish_reason
    assert deltas[-1].usage == expected.usage
    assert all(d.finish_reason is None for d in deltas[:-1])


async def test_stream_with_stop_string_never_emits_the_stop_text(backend: HFBackend) -> None:
    text = await _reference_text(backend, "Debate: is tea better than coffee?", 24)
    stop = _stop_inside(text)
    request = ask("Debate: is tea better than coffee?", max_tokens=24, stop=(stop,))
    pieces = [d.text async for d in backend.stream(request)]
    assert "".join(pieces) == text[: text.index(stop)]
    assert all(stop not in "".join(pieces[: i + 1]) for i in range(len(pieces)))


async def test_stream_with_n_above_one_raises_config_error(backend: HFBackend) -> None:
    with pytest.raises(ConfigError, match="complete"):
        async for _ in backend.stream(ask("hi", n=2)):
            pass


async def test_sampling_with_a_seed_repeats_and_n_gives_n_choices(backend: HFBackend) -> None:
    request = ask("hello", temperature=1.0, seed=7, n=3, max_tokens=8)
    first, again = await backend.complete(request), await backend.complete(request)
    assert len(first.choices) == 3
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    assert len({c.text for c in first.choices}) > 1
    other = await backend.complete(request.model_copy(update={"seed": 8}))
    assert [c.text for c in other.choices] != [c.text for c in first.choices]


async def test_greedy_n_returns_n_identical_choices(backend: HFBackend) -> None:
    completion = await backend.complete(ask("hello", n=2, max_tokens=5))
    single = await backend.complete(ask("hello", max_tokens=5))
    assert completion.choices == (single.choices[0], single.choices[0])
    assert completion.usage == single.usage


async def test_prompt_longer_than_the_context_raises_provider_request_error(
    tmp_path: Path,
) -> None:
    from accord._tiny import save_tiny_llama

    backend = HFBackend(str(save_tiny_llama(tmp_path / "short", max_positions=64)))
    with pytest.raises(ProviderRequestError, match="at most 64"):
        await backend.complete(ask("x" * 80))
    fits = await backend.complete(ask("x" * 20, max_tokens=100))
    assert fits.usage.prompt_tokens + fits.usage.completion_tokens <= 64
    assert fits.finish_reason == "length" or fits.usage.completion_tokens < 100 - 64


async def test_generate_failure_raises_provider_error_for_every_caller(tiny_dir: Path) -> None:
    backend = HFBackend(str(tiny_dir), generate_kwargs={"no_such_argument": 1})
    results = await asyncio.gather(
        backend.complete(ask("a")), backend.complete(ask("b")), return_exceptions=True
    )
    assert all(isinstance(r, ProviderError) for r in results)
    assert "no_such_argument" in str(results[0])
    assert backend.stats.batches == 0


# ----------------------------------------------------------------- batching


async def test_batched_greedy_output_equals_each_request_alone(tiny_dir: Path) -> None:
    backend = HFBackend(str(tiny_dir), max_wait_ms=50)
    requests = [ask(p, max_tokens=12) for p in PROMPTS]
    together = await asyncio.gather(*(backend.complete(r) for r in requests))
    assert backend.stats.batches == 1 and backend.stats.max_rows == 8
    alone = [await backend.complete(r) for r in requests]
    assert backend.stats.batches == 9
    assert [c.text for c in together] == [c.text for c in alone]
    assert [c.usage for c in together] == [c.usage for c in alone]
    assert len({c.text for c in alone}) > 4, "prompts should give different texts"


async def test_eight_concurrent_agents_use_fewer_batches_than_requests(tiny_dir: Path) -> None:
    backend = HFBackend(str(tiny_dir))
    agents = [
        ask(p, max_tokens=6).model_copy(update={"agent": f"debater{i}"})
        for i, p in enumerate(PROMPTS)
    ]
    completions = await asyncio.gather(*(backend.complete(r) for r in agents))
    assert len(completions) == 8 and all(c.usage.completion_tokens >= 1 for c in completions)
    assert backend.stats.requests == 8
    assert backend.stats.batches < backend.stats.requests


async def test_max_batch_size_bounds_rows_per_generate_call(tiny_dir: Path) -> None:
    backend = HFBackend(str(tiny_dir), max_batch_size=3, max_wait_ms=50)
    await asyncio.gather(*(backend.complete(ask(p, max_tokens=2)) for p in PROMPTS))
    assert backend.stats.max_rows == 3 and backend.stats.batches == 3


async def test_requests_with_different_limits_and_stops_share_one_batch(tiny_dir: Path) -> None:
    backend = HFBackend(str(tiny_dir), max_wait_ms=50)
    short, long_ = await asyncio.gather(
        backend.complete(ask("0123456789", max_tokens=2)),
        backend.complete(ask("0123456789", max_tokens=9, stop=("\x00",))),
    )
    assert backend.stats.batches == 1
    assert short.usage.completion_tokens <= 2 and long_.usage.completion_tokens > 2
    assert long_.text.startswith(short.text)


async def test_incompatible_sampling_settings_run_in_separate_batches(tiny_dir: Path) -> None:
    backend = HFBackend(str(tiny_dir), max_wait_ms=50)
    await asyncio.gather(
        backend.complete(ask("a", max_tokens=2)),
        backend.complete(ask("b", max_tokens=2, temperature=0.7)),
        backend.complete(ask("c", max_tokens=2)),
    )
    assert (backend.stats.requests, backend.stats.batches) == (3, 2)


async def test_cancelled_request_is_dropped_and_the_others_finish(tiny_dir: Path) -> None:
    backend = HFBackend(str(tiny_dir), max_wait_ms=200)
    await backend.load()
    tasks = [asyncio.create_task(backend.complete(ask(p, max_tokens=4))) for p in PROMPTS[:3]]
    await asyncio.sleep(0.01)
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert all(c.usage.completion_tokens >= 1 for c in (done[0], done[2]))  # type: ignore[union-attr]
    assert backend.stats.rows == 2 and backend.stats.requests == 2


async def test_stream_closed_early_does_not_disturb_the_batch(tiny_dir: Path) -> None:
    backend = HFBackend(str(tiny_dir), max_wait_ms=50)
    request = ask("Write a haiku about the sea, please.", max_tokens=40)

    async def read_one_delta() -> str:
        async with contextlib.aclosing(backend.stream(request)) as stream:
            async for delta in stream:
                return delta.text
        return ""

    first, other = await asyncio.gather(read_one_delta(), backend.complete(request))
    assert first and other.text.startswith(first)
    assert backend.stats.batches == 1
    alone = await backend.complete(request)
    assert other == alone.model_copy(update={"latency_s": other.latency_s})


async def test_forward_passes_run_in_the_worker_thread_not_the_event_loop(
    backend: HFBackend,
) -> None:
    threads: set[str] = set()
    hook = backend.hf_model.register_forward_pre_hook(
        lambda *_: threads.add(threading.current_thread().name)
    )
    try:
        await backend.complete(ask("hi", max_tokens=3))
        [_ async for _ in backend.stream(ask("hi", max_tokens=3))]
        await backend.score("hi", "there")
        await backend.next_token_logprobs(["hi"])
    finally:
        hook.remove()
    assert threads and all(name.startswith("accord-hf") for name in threads)
    assert threading.current_thread().name not in threads


async def test_run_in_worker_runs_in_the_model_thread_after_queued_generation(
    backend: HFBackend,
) -> None:
    started = threading.Event()
    hook = backend.hf_model.register_forward_pre_hook(lambda *_: started.set())
    try:
        generation = asyncio.create_task(backend.complete(ask("hi", max_tokens=8)))
        assert await asyncio.to_thread(started.wait, 10)  # the batch is running

        def job() -> tuple[str, int]:
            return threading.current_thread().name, backend.stats.batches

        name, batches_seen = await backend.run_in_worker(job)
        await generation
    finally:
        hook.remove()
    assert name.startswith("accord-hf")
    assert batches_seen == 1, "the job must wait for the running batch to finish"


def test_backend_serves_successive_event_loops(tiny_dir: Path) -> None:
    backend = HFBackend(str(tiny_dir))
    first = asyncio.run(backend.complete(ask("hi", max_tokens=4)))
    second = asyncio.run(backend.complete(ask("hi", max_tokens=4)))
    assert first.text == second.text and backend.stats.batches == 2


# ----------------------------------------------------------------- logprobs


async def test_choice_logprobs_equal_a_direct_forward_pass(backend: HFBackend) -> None:
    from _hf_fixtures import forward_logprobs

    request = ask("What is 2+2?", max_tokens=6, logprobs=True, top_logprobs=3)
    completion = await backend.complete(request)
    prompt = backend.encode(backend.chat_prompt(request))
    generated = direct_generate(backend, request, 6)
    ends = [i for i, t in enumerate(generated) if t in backend.eos_token_ids]
    tokens = generated[: ends[0]] if ends else generated
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and len(logprobs) == len(tokens) > 0
    reference = forward_logprobs(backend, prompt + tokens)
    for step, (item, token) in enumerate(zip(logprobs, tokens, strict=False)):
        expected = reference[len(prompt) - 1 + step]
        assert item.logprob == pytest.approx(float(expected[token]), abs=1e-4)
        assert len(item.top) == 3
        assert item.top[0][1] == pytest.approx(float(expected.max()), abs=1e-4)
        assert item.top[0][1] >= item.top[1][1] >= item.top[2][1]
