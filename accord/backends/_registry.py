"""Resolve ``"provider:model"`` names to backends.

``accord.backend("openai:gpt-4o-mini", base_url=...)``, ``accord.backend("hf:./folder")``.
Providers register a factory under a prefix; factories import their SDKs lazily, so resolving a
name is the first moment torch or the openai SDK is imported. Caveat: local (``hf:``) backends are
cached per name and options, so every agent naming one model shares one loaded copy.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from typing import Any

from accord.backends.base import Backend
from accord.errors import ConfigError, UnknownBackendError

__all__ = ["backend", "register_backend", "known_prefixes", "default_model", "DEFAULT_MODEL"]

DEFAULT_MODEL = "hf:Qwen/Qwen2.5-0.5B-Instruct"
"""The model the README's main job uses when none is configured (``ACCORD_MODEL`` overrides)."""

Factory = Callable[..., Backend]

_factories: dict[str, Factory] = {}
_shared: dict[tuple[str, str], Backend] = {}


def register_backend(prefix: str, factory: Factory, *, shared: bool = False) -> None:
    """Register ``factory(model, **options)`` under ``prefix``.

    Args:
        prefix: the part before the colon, e.g. ``"openai"``.
        factory: builds a backend from the model part and keyword options.
        shared: cache instances per (name, options) so one loaded model serves every agent.
    """
    _factories[prefix] = _SharedFactory(factory) if shared else factory


class _SharedFactory:
    def __init__(self, factory: Factory) -> None:
        self.factory = factory

    def __call__(self, model: str, **options: Any) -> Backend:
        key = (model, repr(sorted(options.items())))
        found = _shared.get(key)
        if found is None:
            found = _shared[key] = self.factory(model, **options)
        return found


def known_prefixes() -> tuple[str, ...]:
    _load_builtin()
    return tuple(sorted(_factories))


def default_model() -> str:
    """``ACCORD_MODEL`` if set, else :data:`DEFAULT_MODEL`."""
    return os.environ.get("ACCORD_MODEL") or DEFAULT_MODEL


def backend(name: str, **options: Any) -> Backend:
    """Resolve a ``"provider:model"`` name to a backend.

    Args:
        name: ``"openai:MODEL"`` (any OpenAI-compatible server; pass ``base_url=``),
            ``"hf:HUB_ID"`` / ``"hf:./local/folder"`` (a local transformers model), or a
            cooperative decoder over local models joined by ``+``:
            ``"speculative:hf:./big+hf:./small"`` (target+draft),
            ``"contrastive:hf:./expert+hf:./amateur"``,
            ``"proxy:hf:./base+hf:./expert+hf:./anti"`` (options go to the decoder).
        **options: passed to the backend's constructor.

    Raises:
        UnknownBackendError: the prefix is not known (the message suggests the closest one).
        MissingDependencyError: the provider's optional extra is not installed.
    """
    _load_builtin()
    prefix, sep, model = name.partition(":")
    if not sep or not model:
        raise ConfigError(
            f"backend name {name!r} has no provider prefix. Write it as 'provider:model', e.g. "
            f"'openai:gpt-4o-mini' or 'hf:./path/to/model'. Known prefixes: "
            + ", ".join(repr(p) for p in sorted(_factories))
            + "."
        )
    factory = _factories.get(prefix)
    if factory is None:
        known = tuple(sorted(_factories))
        close = difflib.get_close_matches(prefix, known, n=1)
        hint = f" Did you mean '{close[0]}:{model}'?" if close else ""
        raise UnknownBackendError(
            f"unknown backend {name!r}.{hint} Known prefixes: "
            + ", ".join(repr(p) for p in known)
            + ".",
            name=name,
            known=known,
        )
    return factory(model, **options)


_builtin_loaded = False


def _load_builtin() -> None:
    global _builtin_loaded
    if _builtin_loaded:
        return
    _builtin_loaded = True

    def openai_factory(model: str, **options: Any) -> Backend:
        from accord.backends.openai import OpenAIBackend

        return OpenAIBackend(model, **options)

    def hf_factory(model: str, **options: Any) -> Backend:
        from accord.backends.hf import HFBackend

        return HFBackend(model, **options)

    _factories.setdefault("openai", openai_factory)
    _factories.setdefault("hf", _SharedFactory(hf_factory))
    for prefix, parts in (("speculative", 2), ("contrastive", 2), ("proxy", 3)):
        _factories.setdefault(prefix, _SharedFactory(_cooperative(prefix, parts)))


def _cooperative(prefix: str, parts: int) -> Factory:
    """The factory of ``prefix:MODEL+MODEL[+MODEL]`` (each part a backend name, e.g. ``hf:./a``)."""

    def factory(spec: str, **options: Any) -> Backend:
        names = spec.split("+")
        if len(names) != parts or not all(names):
            example = "+".join(f"hf:./model{i + 1}" for i in range(parts))
            raise ConfigError(
                f"backend '{prefix}:{spec}' needs {parts} models joined by '+', e.g. "
                f"'{prefix}:{example}'."
            )
        models = [backend(n if ":" in n else f"hf:{n}") for n in names]
        from accord import decoding

        if prefix == "speculative":
            return decoding.Speculative(*models, **options)
        if prefix == "contrastive":
            return decoding.Contrastive(*models, **options)
        return decoding.ProxyTuned(*models, **options)

    return factory
