"""The registry of backends: the one place that knows them all.

A model goes to the backend its settings were saved for (`modelyard settings --backend`) where
that is installed, else to the best-ranked backend that takes it among those installed (each
backend ranks a model from its facts when asked, so nothing is frozen at import); when none is
installed, to the best, whose preflight error then says how to install it. Adding a backend is
its module and one entry in KINDS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from pydantic import BaseModel

from modelyard.backends.base import ON_REQUEST, AnyBackend
from modelyard.backends.environments import VARIANTS
from modelyard.backends.exllamav2 import ExLlamaV2
from modelyard.backends.external import External, ExternalTgi
from modelyard.backends.llama_cpp import LlamaServer
from modelyard.backends.llama_cpp_python import LlamaCppPython
from modelyard.backends.runner import (
    Diffusers,
    FasterWhisper,
    InsightFace,
    Piper,
    SentenceTransformers,
    Spandrel,
    Transformers,
)
from modelyard.backends.vllm import Vllm
from modelyard.catalog.records import Model
from modelyard.config import Settings
from modelyard.errors import EngineUnavailable, InvalidSettings, Unsupported

B = TypeVar("B", AnyBackend, type[AnyBackend])

KINDS: tuple[type[AnyBackend], ...] = (
    LlamaServer,
    LlamaCppPython,
    SentenceTransformers,
    Transformers,
    Diffusers,
    Spandrel,
    InsightFace,
    Piper,
    FasterWhisper,
    Vllm,
    ExLlamaV2,
    External,
    ExternalTgi,
)


def best_first(backends: Iterable[B], model: Model) -> list[B]:
    """Those of ``backends`` that take ``model``, best first: by their ranks, asked now (their
    order between equal ranks)."""
    ranked = [(rank, i, b) for i, b in enumerate(backends) if (rank := b.rank(model)) is not None]
    return [b for _, _, b in sorted(ranked, key=lambda r: r[:2])]


def kinds_for(model: Model) -> list[type[AnyBackend]]:
    """The kinds of backend that take ``model``, best first."""
    return best_first(KINDS, model)


def kind_named(name: str) -> type[AnyBackend]:
    """The kind of backend called ``name``."""
    found = next((k for k in KINDS if k.name == name), None)
    if found is None:
        raise Unsupported(f"no backend named {name!r}", hint=f"one of {', '.join(k.name for k in KINDS)}")
    return found


def loaders_for(model: Model) -> list[str]:
    """The manuals' loaders that run ``model``, best first."""
    return list(dict.fromkeys(kind.loader for kind in kinds_for(model)))


def _none_runs(model: Model) -> InvalidSettings:
    return InvalidSettings(
        f"no backend of modelyard runs {model.name!r} ({model.format}"
        f"{', ' + model.quantization if model.quantization else ''}) yet",
        hint="convert it to GGUF (llama.cpp) or safetensors (transformers)",
    )


def options_model(model: Model, backend: str | None = None) -> tuple[str, type[BaseModel]]:
    """The backend a model's settings are for, and its options schema: ``backend``, else the one
    they were saved for, else the model's best. Backends that take the same models share one
    schema (llama.cpp and llama-cpp-python)."""
    kinds = kinds_for(model)
    if not kinds:
        raise _none_runs(model)
    wanted = backend or (model.settings.backend if model.settings else None)
    chosen = next((k for k in kinds if k.name == wanted), None)
    if chosen is None and backend is not None:
        raise InvalidSettings(
            f"the {backend} backend does not run {model.name!r}",
            hint=f"backends that do: {', '.join(k.name for k in kinds)}",
        )
    chosen = chosen or kinds[0]
    return chosen.name, chosen.options


class Backends:
    """The backends of one server, built from its settings. Whether each is installed is looked
    up at most every ``ttl`` seconds (the gateway asks on every request)."""

    def __init__(
        self, backends: Sequence[AnyBackend], *, ttl: float = 5.0, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._backends = {b.name: b for b in backends}
        self._ttl = ttl
        self._now = now
        self._seen: dict[str, tuple[float, bool]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Backends:
        return cls([kind.from_settings(settings) for kind in KINDS])

    def __iter__(self) -> Iterator[AnyBackend]:
        return iter(self._backends.values())

    def get(self, name: str) -> AnyBackend:
        backend = self._backends.get(name)
        if backend is None:
            raise Unsupported(f"no backend named {name!r}", hint=f"one of {', '.join(self._backends)}")
        return backend

    @staticmethod
    def variants(backend: AnyBackend) -> tuple[str, ...]:
        """The builds a backend installs: cpu and cuda, and vulkan for llama.cpp."""
        return tuple(getattr(backend, "variants", VARIANTS))

    def forget(self, name: str) -> None:
        """Look at whether ``name`` is installed again next time (it was just installed)."""
        self._seen.pop(name, None)

    def installed(self, backend: AnyBackend) -> bool:
        now = self._now()
        seen = self._seen.get(backend.name)
        if seen is None or now - seen[0] > self._ttl:
            try:
                backend.preflight()
                ok = True
            except EngineUnavailable:
                ok = False
            seen = self._seen[backend.name] = (now, ok)
        return seen[1]

    def for_model(self, model: Model) -> AnyBackend:
        """The backend that serves ``model``: the one its settings were saved for where it is
        installed, else the first installed one that takes it, else the first that takes it (its
        preflight says what to install); one that takes it only on request (ON_REQUEST) only
        when its settings name it."""
        candidates = best_first(self, model)
        if not candidates:
            raise _none_runs(model)
        saved_for = model.settings.backend if model.settings else None
        chosen = next((b for b in candidates if b.name == saved_for and self.installed(b)), None)
        picked = [b for b in candidates if (b.rank(model) or 0) < ON_REQUEST] or candidates
        return chosen or next((b for b in picked if self.installed(b)), picked[0])
