"""pydantic's validation errors as one line a person can act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def describe(errors: Sequence[Any], *, skip: int = 0, whole: str = "body") -> str:
    """pydantic's errors as `field: message; ...`. ``skip`` drops leading location parts (such as
    FastAPI's "body"); ``whole`` names an error about the object itself. A body that is no JSON
    at all (pydantic's and FastAPI's ``json_invalid``) is said so, with the parser's reason."""
    return "; ".join(_one(e, skip, whole) for e in errors)


def _one(error: Any, skip: int, whole: str) -> str:
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error") or error["msg"]
        return f"the {whole} is not valid JSON: {reason}"
    return f"{'.'.join(str(p) for p in error['loc'][skip:]) or whole}: {error['msg']}"
