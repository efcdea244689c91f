"""Dynamic batching: concurrent requests are run through the model together.

While one batch runs, new requests queue up; the next batch takes all of them (up to the batch
size). A lone request runs at once. When a burst is visible (more than one request waiting), the
batcher lingers while requests keep arriving (gaps under GAP, LINGER at most), so that the burst
fills one batch. (Behind the gateway, bursts mostly arrive merged already: see
gateway/coalesce.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from modelyard.runners import compute

GAP = 0.005  # seconds between arrivals that still count as one burst
LINGER = 0.03  # the longest a batch waits for more
X = TypeVar("X")
Y = TypeVar("Y")


@dataclass
class _Job(Generic[X, Y]):
    items: Sequence[X]
    done: asyncio.Future[list[Y]]


class Batcher(Generic[X, Y]):
    """``await batcher.run(items)`` -> results, one per item, computed by ``fn`` (blocking, run in
    a thread) on batches of at most ``max_items`` items gathered from all callers."""

    def __init__(self, fn: Callable[[list[X]], list[Y]], max_items: int) -> None:
        self.fn = fn
        self.max_items = max_items
        self._queue: asyncio.Queue[_Job[X, Y]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0  # how many batches ran
        self.items = 0  # how many items they held

    async def run(self, items: Sequence[X]) -> list[Y]:
        if self._worker is None:
            self._worker = asyncio.create_task(self._work())
        done: asyncio.Future[list[Y]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(items, done))
        return await done

    async def _work(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            size = len(jobs[0].items)
            deadline = time.monotonic() + (0.0 if self._queue.empty() else LINGER)
            while size < self.max_items:
                if self._queue.empty():
                    if time.monotonic() >= deadline:
                        break
                    await asyncio.sleep(GAP)
                    if self._queue.empty():
                        break  # the burst is over
                    continue
                nxt = self._queue.get_nowait()
                jobs.append(nxt)
                size += len(nxt.items)
            flat = [x for job in jobs for x in job.items]
            try:
                out = await compute.run(self.fn, flat)
            except Exception as e:
                for job in jobs:
                    if not job.done.done():
                        job.done.set_exception(e)
                continue
            self.batches += 1
            self.items += len(flat)
            at = 0
            for job in jobs:
                n = len(job.items)
                if not job.done.done():
                    job.done.set_result(out[at : at + n])
                at += n

    def stats(self) -> dict[str, int]:
        return {"batches": self.batches, "items": self.items}
