"""Stored responses of the Responses API: each kept with its input items for the key that made
it, for ``keep`` days; a chain of them (previous_response_id) read back as the items that open
the next request. The catalog holds them; its blocking calls run on a thread."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from modelyard.catalog.records import StoredResponse
from modelyard.catalog.store import Store
from modelyard.errors import InvalidRequest, ResponseNotFound

DEPTH = 1000  # the longest chain read back
PURGE_EVERY = timedelta(hours=1)


def _now() -> datetime:
    return datetime.now(UTC)


def input_items(given: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A request's input as items, each with an id (as input_items lists them)."""
    if isinstance(given, str):
        given = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": given}]}]
    return [item if "id" in item else {**item, "id": f"item_{uuid.uuid4().hex}"} for item in given]


class Conversations:
    def __init__(self, store: Store, keep_days: float, now: Callable[[], datetime] = _now) -> None:
        self.store = store
        self.keep_for = timedelta(days=keep_days)
        self.now = now
        self.purged: datetime | None = None

    @property
    def keeps(self) -> bool:
        """Whether responses are stored at all (MODELYARD_RESPONSES_KEEP is not 0)."""
        return self.keep_for > timedelta(0)

    async def keep(self, account: str | None, items: list[dict[str, Any]], response: dict[str, Any]) -> None:
        """Store ``response`` (made from ``items``) for ``account`` (None: the local user); the
        responses past their days are forgotten, once an hour."""
        stored = StoredResponse(
            id=response["id"], account=account or "", model=response["model"],
            previous=response.get("previous_response_id"), input=items, response=response, created_at=self.now(),
        )  # fmt: skip
        await asyncio.to_thread(self.store.put_response, stored)
        now = self.now()
        if self.purged is None or now - self.purged >= PURGE_EVERY:
            self.purged = now
            await asyncio.to_thread(self.store.delete_responses_before, now - self.keep_for)

    async def get(self, rid: str, account: str | None) -> StoredResponse:
        found = await asyncio.to_thread(self.store.get_response, rid, account or "")
        if found is None or self._expired(found):
            raise ResponseNotFound(rid)
        return found

    async def delete(self, rid: str, account: str | None) -> None:
        if not await asyncio.to_thread(self.store.delete_response, rid, account or ""):
            raise ResponseNotFound(rid)

    async def history(self, rid: str, account: str | None) -> list[dict[str, Any]]:
        """The items of the chain that ends in ``rid``, oldest first: each response's input
        items, then its output."""
        chain: list[StoredResponse] = []
        at: str | None = rid
        while at is not None:
            if len(chain) == DEPTH:
                raise InvalidRequest(f"the conversation is longer than {DEPTH} responses")
            found = await self.get(at, account)
            chain.append(found)
            at = found.previous
        items: list[dict[str, Any]] = []
        for stored in reversed(chain):
            items += stored.input
            items += stored.response.get("output") or []
        return items

    def _expired(self, stored: StoredResponse) -> bool:
        return stored.created_at is not None and stored.created_at < self.now() - self.keep_for
