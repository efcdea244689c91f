"""A clock the tests move by hand: time stands still until ``advance``."""

from __future__ import annotations

import asyncio
import heapq
import itertools


class FakeClock:
    """Time stands still until ``advance`` moves it; sleepers wake in order as it passes their
    deadlines, and the tasks they wake run before ``advance`` returns."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        """How many tasks sleep now."""
        return sum(1 for *_, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        await settle()  # what is ready reacts at the time it is now, before time moves
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            at, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, at)
            if not future.done():
                future.set_result(None)
            await settle()
        self._now = target
        await settle()


async def settle(rounds: int = 20) -> None:
    """Let the tasks that are ready run (and the ones they wake), a few loop turns."""
    for _ in range(rounds):
        await asyncio.sleep(0)
