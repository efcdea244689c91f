"""OpenAI's lists, a page at a time: ``data``, ``first_id``, ``last_id``, ``has_more``."""

from __future__ import annotations

from typing import Any

from modelyard.errors import InvalidRequest


def page(
    items: list[dict[str, Any]], after: str | None, limit: int, *, of: str = "this list"
) -> dict[str, Any]:
    """The page of ``items`` (in their order) that begins after the one whose id is ``after``."""
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequest(f"{of} has no {after!r}", param="after")
        items = items[ids.index(after) + 1 :]
    shown = items[:limit]
    return {"object": "list", "data": shown, "first_id": shown[0]["id"] if shown else None,
            "last_id": shown[-1]["id"] if shown else None, "has_more": len(items) > limit}  # fmt: skip
