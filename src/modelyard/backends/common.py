"""Option types shared by the backends."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "float32", "float16", "bfloat16"]
Truncation = Literal["disabled", "auto"]

# Options the gateway reads at each request (gateway/truncation.py): no engine starts differently
# for them, so a change applies at once, with no reload.
GATEWAY_OPTIONS = frozenset({"truncation"})


def truncation_field() -> Truncation:
    """The ``truncation`` option of a backend whose engine chats and counts tokens."""
    value: Truncation = Field(
        "disabled",
        description="a chat longer than the context: refused (disabled), or cut by its oldest turns, "
        "the system prompt and the latest turn kept (auto)",
    )
    return value
