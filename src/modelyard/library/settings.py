"""Per-model settings, validated by the options schema of the model's backend."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from modelyard.backends import OPTIONS, backend_for
from modelyard.catalog.records import Model
from modelyard.errors import InvalidSettings
from modelyard.problems import describe


def backend_of(model: Model) -> str:
    backend = backend_for(model.loaders)
    if backend is None:
        raise InvalidSettings(
            f"no backend of modelyard runs {model.name!r} ({model.format}"
            f"{', ' + model.quantization if model.quantization else ''}) yet",
            hint=f"it needs {' or '.join(model.loaders)}" if model.loaders else "convert it to GGUF",
        )
    return backend


def validate(model: Model, options: dict[str, Any]) -> BaseModel:
    """Check ``options`` against the backend's schema and the model's own limits."""
    backend = backend_of(model)
    try:
        parsed = OPTIONS[backend].model_validate(options)
    except ValidationError as e:
        problems = describe(e.errors(), whole="options")
        raise InvalidSettings(f"invalid {backend} settings for {model.name!r}: {problems}") from None
    n_ctx = getattr(parsed, "n_ctx", 0)
    trained = model.context_length
    scaled = getattr(parsed, "rope_scaling", None) not in (None, "none") or getattr(
        parsed, "rope_freq_scale", None
    )
    if trained and n_ctx > trained and not scaled:
        raise InvalidSettings(
            f"n_ctx {n_ctx} is beyond the trained context of {model.name!r} ({trained})",
            hint="use 0 for the model's own context, or set rope_scaling to stretch it",
        )
    return parsed


def effective(model: Model) -> dict[str, Any]:
    """The options a load would use: saved ones over the defaults, n_ctx 0 resolved."""
    stored = model.settings.options if model.settings else {}
    options = validate(model, stored).model_dump()
    if options.get("n_ctx") == 0 and model.context_length:
        options["n_ctx"] = model.context_length
    return options
