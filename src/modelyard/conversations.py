"""Stored responses of the Responses API: each kept with its input items for the key that made
it, for ``keep`` days; a chain of them (previous_response_id) read back as the items that open
the next request; background ones run as tasks here, stored as they go (queued, in_progress,
then done, failed or cancelled). The catalog holds them; its blocking calls run on a thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from modelyard.catalog.records import StoredResponse
from modelyard.catalog.store import Store
from modelyard.errors import InvalidRequest, ModelyardError, ResponseNotFound

log = logging.getLogger(__name__)
DEPTH = 1000  # the longest chain read back
PURGE_EVERY = timedelta(hours=1)
STOPPED = "the server stopped before the response was finished"


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
        # background responses, by id: the task that makes each, and the response as it stands
        self.running: dict[str, tuple[asyncio.Task[None], dict[str, Any]]] = {}
        self.closing = False

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
        """Forget a response (a background one that runs stops first)."""
        if rid in self.running:
            await self.cancel(rid, account)
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

    async def recover(self) -> None:
        """Background responses a stopped server left unfinished: failed, as none runs now."""
        for stored in await asyncio.to_thread(self.store.unfinished_responses):
            await self._end(stored.response, "failed", STOPPED)

    async def in_background(
        self, account: str | None, items: list[dict[str, Any]], response: dict[str, Any],
        work: Callable[[], Awaitable[dict[str, Any]]],
    ) -> None:  # fmt: skip
        """Store ``response`` (queued) and run ``work``, which makes it, as a task; the stored
        response follows it."""
        await self.keep(account, items, response)
        self.running[response["id"]] = (asyncio.create_task(self._run(response, work)), response)

    async def _run(self, response: dict[str, Any], work: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        rid = response["id"]
        try:
            response["status"] = "in_progress"
            await asyncio.to_thread(self.store.update_response, rid, response)
            await asyncio.to_thread(self.store.update_response, rid, await work())
        except asyncio.CancelledError:
            await self._end(
                response, "failed" if self.closing else "cancelled", STOPPED if self.closing else None
            )
        except ModelyardError as e:
            await self._end(response, "failed", e.message)
        except Exception as e:
            log.exception("background response %s failed", rid)
            await self._end(response, "failed", f"the response failed: {e.__class__.__name__}")
        finally:
            self.running.pop(rid, None)

    async def _end(self, response: dict[str, Any], status: str, error: str | None) -> None:
        response["status"] = status
        if error is not None:
            response["error"] = {"code": "server_error", "message": error}
        await asyncio.to_thread(self.store.update_response, response["id"], response)

    async def cancel(self, rid: str, account: str | None) -> dict[str, Any]:
        """Stop a background response (one that has finished stays as it is); the response."""
        stored = await self.get(rid, account)
        if not stored.response.get("background"):
            raise InvalidRequest(f"{rid!r} is not a background response: only those can be cancelled")
        if rid in self.running:
            task, response = self.running[rid]
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if response["status"] == "queued":  # cancelled before it began
                await self._end(response, "cancelled", None)
        return (await self.get(rid, account)).response

    async def close(self) -> None:
        """Stop the background responses: they fail, as the server stops."""
        self.closing = True
        running = list(self.running.values())
        for task, _ in running:
            task.cancel()
        await asyncio.gather(*(task for task, _ in running), return_exceptions=True)
        for _, response in running:
            if response["status"] == "queued":  # stopped before it began
                await self._end(response, "failed", STOPPED)
