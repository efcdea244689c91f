"""What a key may reach: its own module, so that the CLI names it without loading the catalog."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    ADMIN = "admin"  # everything
    INFERENCE = "inference"  # /v1 only
