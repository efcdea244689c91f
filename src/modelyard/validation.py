"""pydantic's validation errors as one line a person can act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def describe(errors: Sequence[Any], *, skip: int = 0, whole: str = "body", extra: str | None = None) -> str:
    """pydantic's errors as `field: message; ...`. ``skip`` drops leading location parts (such as
    FastAPI's "body"); ``whole`` names an error about the object itself; ``extra`` says what a
    field that is not allowed is (an engine's "not supported by this engine"). A body that is no
    JSON at all (pydantic's and FastAPI's ``json_invalid``) is said so, with the parser's reason."""
    return "; ".join(_one(e, skip, whole, extra) for e in errors)


def first_field(errors: Sequence[Any]) -> str | None:
    """The field the first error is about (an OpenAI error's ``param``)."""
    loc = errors[0]["loc"] if errors else ()
    return str(loc[0]) if loc else None


def _one(error: Any, skip: int, whole: str, extra: str | None) -> str:
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error") or error["msg"]
        return f"the {whole} is not valid JSON: {reason}"
    where = ".".join(str(p) for p in error["loc"][skip:]) or whole
    if extra is not None and error.get("type") == "extra_forbidden":
        return f"{where}: {extra}"
    return f"{where}: {str(error['msg']).removeprefix('Value error, ')}"
