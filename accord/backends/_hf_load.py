"""Finding, placing and loading a local transformers model for :class:`HFBackend`.

Three steps, each with accord's own errors: :func:`check_source` (cheap, at construction: a local
folder exists and holds a model; a hub id is usable offline), :func:`resolve_device` /
:func:`resolve_dtype` (cuda, then mps, then cpu; bfloat16 on cuda, float16 on mps, float32 on
cpu; given values are honoured and checked), and :func:`load` (slow, in the backend's worker
thread). Caveat: :func:`load` turns every ``OSError``/``ValueError`` of ``from_pretrained`` into a
:class:`~accord.errors.ConfigError` that says how to point at a local folder or at an
OpenAI-compatible server; no raw ``OSError`` escapes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord._lazy import require
from accord.errors import ConfigError

__all__ = [
    "Loaded",
    "Source",
    "check_source",
    "resolve_device",
    "resolve_dtype",
    "load",
    "how_to_fix",
]

CHAT_END_MARKERS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")
"""End-of-turn tokens that also end generation when the tokenizer has them."""

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


def how_to_fix() -> str:
    """The sentence every load error ends with: the two ways to name a model that works."""
    return (
        "Point accord at a local folder that holds a saved transformers model "
        "('hf:./path/to/model', via ACCORD_MODEL or --model), or at an OpenAI-compatible server "
        "('openai:NAME' plus --base-url URL, e.g. a llama.cpp, vLLM or Ollama server)."
    )


@dataclass(frozen=True)
class Source:
    """Where a model comes from: a local folder (absolute path) or a hub id."""

    name: str
    """The name as given (``./tiny`` or ``Qwen/Qwen2.5-0.5B-Instruct``)."""
    location: str
    """What ``from_pretrained`` receives: the absolute folder, or the hub id."""
    local: bool


def _looks_like_path(name: str) -> bool:
    if name.startswith((".", "/", "~", "\\")) or os.path.isabs(name):
        return True
    if len(name) > 1 and name[1] == ":":  # a Windows drive
        return True
    return name.count("/") > 1 or "\\" in name


def _hub_offline() -> bool:
    constants = require("huggingface_hub.constants", extra="hf", package="huggingface_hub")
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _in_hub_cache(repo_id: str, revision: str | None) -> bool:
    hub = require("huggingface_hub", extra="hf")
    try:
        found = hub.try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except ValueError as exc:  # HFValidationError: not a valid repo id
        raise ConfigError(
            f"model {repo_id!r} is neither an existing folder nor a valid Hugging Face hub id "
            f"({exc}). {how_to_fix()}"
        ) from exc
    return isinstance(found, str)


def check_source(name: str, *, revision: str | None = None) -> Source:
    """Check cheaply that ``name`` can be loaded, without loading it.

    Args:
        name: a local folder (``./tiny``, ``/models/x``, ``~/m``) or a hub id (``org/name``).
        revision: the hub revision, if any.

    Returns:
        The resolved :class:`Source`.

    Raises:
        ConfigError: the folder does not exist or holds no ``config.json``; or the hub id is not
            in the local cache while the hub is offline (``HF_HUB_OFFLINE=1``).
    """
    if not name or not name.strip():
        raise ConfigError(f"the model name is empty. {how_to_fix()}")
    folder = Path(os.path.expanduser(name))
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"folder {name!r} holds no config.json, so it is not a saved transformers model. "
                "Save one there with model.save_pretrained(folder) and "
                f"tokenizer.save_pretrained(folder). {how_to_fix()}"
            )
        return Source(name=name, location=str(folder.resolve()), local=True)
    if _looks_like_path(name):
        raise ConfigError(
            f"model folder {name!r} does not exist (looked in {str(folder.absolute())!r}). "
            f"{how_to_fix()}"
        )
    if _hub_offline() and not _in_hub_cache(name, revision):
        raise ConfigError(
            f"cannot load model {name!r}: it is not a local folder, it is not in the Hugging Face "
            "cache, and the hub is offline (HF_HUB_OFFLINE is set). "
            f"{how_to_fix()} To use the hub model, download it once with network access."
        )
    return Source(name=name, location=name, local=False)


def resolve_device(device: str | None) -> Any:
    """The ``torch.device`` to run on: the one given, else cuda, else mps, else cpu.

    Raises:
        ConfigError: the device is malformed, or names cuda/mps that torch cannot see.
    """
    torch = require("torch", extra="hf")
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_ok else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"device {device!r} is not a torch device. Use 'cpu', 'cuda', 'cuda:1', 'mps', or "
            "leave it unset to choose automatically."
        ) from exc
    if (resolved.type == "cuda" and not torch.cuda.is_available()) or (
        resolved.type == "mps" and not mps_ok
    ):
        raise ConfigError(
            f"device {device!r} was asked for, but this torch build sees no {resolved.type} "
            "device. Use device='cpu', or leave it unset to choose automatically."
        )
    return resolved


def resolve_dtype(dtype: Any, device: Any) -> Any:
    """The ``torch.dtype`` of the weights: the one given, else by device.

    Args:
        dtype: None or "auto" (bfloat16 on cuda when supported, else float16; float16 on mps;
            float32 on cpu), a name ("float32", "bf16", ...) or a ``torch.dtype``.
        device: the resolved ``torch.device``.

    Raises:
        ConfigError: an unknown dtype name.
    """
    torch = require("torch", extra="hf")
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.type == "mps" else torch.float32
    key = _DTYPES.get(str(dtype).lower().removeprefix("torch."))
    if key is None:
        raise ConfigError(
            f"dtype {dtype!r} is not supported. Use one of 'float32', 'bfloat16', 'float16', "
            "a torch.dtype, or leave it unset to choose by device."
        )
    return getattr(torch, key)


@dataclass
class Loaded:
    """A loaded model with what generation needs to know about its tokenizer."""

    model: Any
    tokenizer: Any
    device: Any
    dtype: Any
    eos_ids: tuple[int, ...]
    """Token ids that end a generation (model's EOS, tokenizer's EOS, chat end markers)."""
    pad_id: int
    has_chat_template: bool
    bos_text: str
    """BOS as text, prepended to plain (template-less) prompts when the tokenizer adds BOS."""
    context: int | None = None
    """The model's context length in tokens, when its config says."""

    def decode(self, ids: list[int]) -> str:
        """Token ids to text, special tokens dropped."""
        text: str = self.tokenizer.decode(ids, skip_special_tokens=True)
        return text

    def encode(self, text: str) -> list[int]:
        """Text to token ids, no special tokens added (chat templates already carry them)."""
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids


def _as_ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def _end_ids(model: Any, tokenizer: Any) -> tuple[int, ...]:
    ids = _as_ids(getattr(model.generation_config, "eos_token_id", None))
    ids += _as_ids(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    ids += [vocab[marker] for marker in CHAT_END_MARKERS if marker in vocab]
    return tuple(dict.fromkeys(ids))


def _bos_text(tokenizer: Any) -> str:
    bos_id = tokenizer.bos_token_id
    if bos_id is None or not tokenizer.bos_token:
        return ""
    with_specials = tokenizer("a", add_special_tokens=True)["input_ids"]
    return str(tokenizer.bos_token) if with_specials and with_specials[0] == bos_id else ""


def load(
    source: Source,
    *,
    device: Any,
    dtype: Any,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> Loaded:
    """Load tokenizer and causal LM (blocking: call it from a worker thread).

    Raises:
        ConfigError: the folder or hub id cannot be loaded (missing, offline, not a causal LM,
            broken files); the message names the cause and how to point elsewhere.
    """
    transformers = require("transformers", extra="hf")
    major = int(str(transformers.__version__).split(".")[0])
    dtype_kw = "dtype" if major >= 5 else "torch_dtype"
    common: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source.location, **common)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            source.location, **{dtype_kw: dtype}, **common
        )
    except (OSError, ValueError, KeyError) as exc:
        where = "folder" if source.local else "hub model"
        raise ConfigError(
            f"cannot load {where} {source.name!r} as a causal language model: {exc}. {how_to_fix()}"
        ) from exc
    model.to(device)
    model.eval()
    tokenizer.padding_side = "left"
    ends = _end_ids(model, tokenizer)
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = getattr(model.generation_config, "pad_token_id", None)
    if pad is None:
        pad = ends[0] if ends else 0
    return Loaded(
        model=model,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        eos_ids=ends,
        pad_id=int(pad),
        has_chat_template=bool(getattr(tokenizer, "chat_template", None)),
        bos_text=_bos_text(tokenizer),
        context=_context(model.config),
    )


def _context(config: Any) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
