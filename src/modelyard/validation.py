"""pydantic's validation errors as one line a person can act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def describe(errors: Sequence[Any], *, skip: int = 0, whole: str = "body") -> str:
    """pydantic's errors as `field: message; ...`. ``skip`` drops leading location parts (such as
    FastAPI's "body"); ``whole`` names an error about the object itself."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'][skip:]) or whole}: {e['msg']}" for e in errors)
