"""accord._tiny: offline tokenizers and tiny models that reload by folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import _hf_fixtures` from any layout

from _hf_fixtures import torch  # noqa: E402

from accord import _tiny  # noqa: E402

TEXT = "héllo wörld ✓ — 数学\n\tend"


def test_byte_tokenizer_round_trips_any_text_one_token_per_byte() -> None:
    tok = _tiny.byte_tokenizer()
    ids = tok(TEXT)["input_ids"]
    assert len(tok) == 261 and len(ids) == len(TEXT.encode("utf-8"))
    assert tok.decode(ids) == TEXT
    specials = [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id]
    assert specials == [0, 1, 2] and tok.convert_tokens_to_ids("<|im_end|>") == 4
    assert tok("<|im_start|>user")["input_ids"][0] == 3
    assert tok.padding_side == "left"


def test_byte_tokenizer_chat_template_is_chatml() -> None:
    tok = _tiny.byte_tokenizer()
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert _tiny.byte_tokenizer(chat_template=None).chat_template is None


def test_char_tokenizer_prepends_bos_and_maps_unknown_characters() -> None:
    tok = _tiny.char_tokenizer("0123456789+=")
    ids = tok("12+3=15")["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == 8
    assert tok.decode(ids, skip_special_tokens=True) == "12+3=15"
    assert tok("1x")["input_ids"][-1] == tok.convert_tokens_to_ids("<unk>")


def test_bpe_tokenizer_round_trips_with_fewer_tokens_than_bytes() -> None:
    corpus = ["def function(argument):\n    return argument + 1\n"] * 200
    tok = _tiny.bpe_tokenizer(corpus, vocab_size=400)
    code = "def function(argument):\n    return argument"
    ids = tok(code)["input_ids"]
    assert tok.decode(ids) == code
    assert len(ids) < len(code.encode()) / 3
    assert tok.decode(tok(TEXT)["input_ids"]) == TEXT


def test_save_tiny_llama_reloads_by_folder_with_same_tokens_and_weights(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = _tiny.save_tiny_llama(tmp_path / "m", seed=3)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert tok(TEXT)["input_ids"] == _tiny.byte_tokenizer()(TEXT)["input_ids"]
    assert tok.padding_side == "left" and tok.chat_template == _tiny.CHATML_TEMPLATE
    assert model.generation_config.eos_token_id == [2, 4]
    assert model.generation_config.pad_token_id == 0
    same = _tiny.tiny_llama(seed=3).state_dict()
    other = _tiny.tiny_llama(seed=4).state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, same[name]), name
    assert not all(torch.equal(same[n], other[n]) for n in same)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert config["additional_special_tokens"] == ["<|im_start|>", "<|im_end|>"]
    assert config["model_input_names"] == ["input_ids", "attention_mask"]


def test_tiny_models_leave_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _tiny.tiny_llama(seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_save_tiny_gpt2_generates_after_reload(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    tok = _tiny.char_tokenizer("0123456789+=")
    folder = _tiny.save_tiny_gpt2(tmp_path / "g", tok, hidden=32, layers=1, heads=2)
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = torch.tensor([tok("12+3=")["input_ids"]])
    out = model.generate(input_ids=ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape == (1, ids.shape[1] + 4)
    assert model.config.model_type == "gpt2" and model.config.vocab_size == len(tok)


def test_llama_46m_shape_has_about_46_million_parameters() -> None:
    with torch.device("meta"):
        model = _tiny.tiny_llama(**_tiny.LLAMA_46M)
    assert 45_000_000 < _tiny.param_count(model) < 47_000_000
