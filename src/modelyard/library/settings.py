"""Per-model settings, validated by the options schema of the backend that serves the model.
Options are typed (that schema's pydantic model) from here to the engine's command line."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ValidationError

from modelyard.backends.registry import options_model
from modelyard.catalog.records import Model
from modelyard.errors import InvalidSettings
from modelyard.validation import describe


def backend_of(model: Model) -> str:
    """The name of the backend whose options schema the model's settings follow: the one they
    were saved for, else the model's best."""
    return options_model(model)[0]


def default_backend(model: Model) -> str:
    """The backend a model's settings follow until saved for another: its best."""
    return options_model(replace(model, settings=None))[0]


def schema_for(model: Model, backend: str | None = None) -> tuple[str, type[BaseModel]]:
    """The backend the model's settings are for (``backend``, else the one they follow) and its
    options schema; InvalidSettings when ``backend`` does not run the model."""
    return options_model(model, backend)


def validate(model: Model, options: dict[str, Any], schema: type[BaseModel] | None = None) -> BaseModel:
    """Check ``options`` against the backend's schema (``schema``, else the one the model's
    backends share) and the model's own limits."""
    schema = schema or options_model(model)[1]
    try:
        parsed = schema.model_validate(options)
    except ValidationError as e:
        problems = describe(e.errors(), whole="options")
        raise InvalidSettings(f"invalid settings for {model.name!r}: {problems}") from None
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


def resolved(model: Model, options: BaseModel) -> BaseModel:
    """``options`` with n_ctx 0 resolved to the model's own context."""
    if getattr(options, "n_ctx", None) == 0 and model.context_length:
        return options.model_copy(update={"n_ctx": model.context_length})
    return options


def effective(
    model: Model, schema: type[BaseModel] | None = None, overrides: dict[str, Any] | None = None
) -> BaseModel:
    """The options a load would use: the saved ones (and ``overrides``) over the defaults, by
    ``schema`` (see validate), n_ctx 0 resolved. Under another backend's schema than the one the
    settings follow (a deployment that picks its backend), the saved options it shares carry over
    (n_ctx, precision, ...) and the rest are its defaults."""
    stored = model.settings.options if model.settings else {}
    if schema is not None:  # saved for its own schema, or another's: what this one takes
        stored = {k: v for k, v in stored.items() if k in schema.model_fields}
    return resolved(model, validate(model, {**stored, **(overrides or {})}, schema))
