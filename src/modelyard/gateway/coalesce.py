"""Embedding requests for the same model that arrive together go to the engine as one request.

A request for a model with nothing in flight goes at once. Requests that arrive while one is in
flight wait, and leave together as the next request (its ``input`` the list of all their texts);
the answer is split back, each client getting its own vectors, indices and token counts. On the
engine's side they form one batch; on the way there the gateway saves a request per text.

Only modelyard's own runner takes part: it reports the tokens of each input, so each client's
usage stays exact."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_ITEMS = 512  # texts in one merged request
ALLOWED = frozenset({"model", "input", "encoding_format", "dimensions", "user"})

# (texts, upstream body extras) -> (status, parsed body or raw error bytes)
Send = Callable[[list[str], dict[str, Any]], Awaitable[tuple[int, Any]]]


@dataclass
class _Waiting:
    texts: list[str]
    done: asyncio.Future[tuple[int, bytes]]


@dataclass
class _Group:
    send: Send
    extras: dict[str, Any]
    name: str
    waiting: list[_Waiting] = field(default_factory=list)
    busy: bool = False


class Coalescer:
    def __init__(self) -> None:
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    @staticmethod
    def texts_of(body: dict[str, Any]) -> list[str] | None:
        """The texts of a body that can be merged with others, or None."""
        if not ALLOWED.issuperset(body):
            return None
        value = body.get("input")
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
        return None

    async def embed(
        self, key: tuple[Any, ...], name: str, texts: list[str], extras: dict[str, Any], send: Send
    ) -> tuple[int, bytes]:
        """The status and body (JSON bytes) of this request's own answer."""
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(send, extras, name)
        group.send = send  # the newest: it holds the current instance's URL
        done: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        group.waiting.append(_Waiting(texts, done))
        if not group.busy:
            group.busy = True
            task = asyncio.ensure_future(self._drain(key, group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await done

    async def _drain(self, key: tuple[Any, ...], group: _Group) -> None:
        for _ in range(3):  # let requests that are already in the loop's hands join the first one
            await asyncio.sleep(0)
        try:
            while group.waiting:
                batch: list[_Waiting] = []
                size = 0
                while group.waiting and (not batch or size + len(group.waiting[0].texts) <= MAX_ITEMS):
                    item = group.waiting.pop(0)
                    batch.append(item)
                    size += len(item.texts)
                await self._one(group, batch)
        finally:
            group.busy = False
            if not group.waiting:
                self._groups.pop(key, None)

    async def _one(self, group: _Group, batch: list[_Waiting]) -> None:
        texts = [t for w in batch for t in w.texts]
        try:
            status, answer = await group.send(texts, group.extras)
        except Exception as e:  # deliver the failure to each client, keep the gateway up
            for w in batch:
                if not w.done.done():
                    w.done.set_exception(e)
            return
        if status != 200 or not isinstance(answer, dict):
            raw = answer if isinstance(answer, bytes) else orjson.dumps(answer)
            for w in batch:
                if not w.done.done():
                    w.done.set_result((status, raw))
            return
        data, tokens = answer["data"], answer.get("tokens") or [0] * len(texts)
        at = 0
        for w in batch:
            n = len(w.texts)
            items = [{**d, "index": i} for i, d in enumerate(data[at : at + n])]
            used = sum(tokens[at : at + n])
            body = {
                "object": "list",
                "data": items,
                "model": group.name,
                "usage": {"prompt_tokens": used, "total_tokens": used},
            }
            if not w.done.done():
                w.done.set_result((200, orjson.dumps(body)))
            at += n
