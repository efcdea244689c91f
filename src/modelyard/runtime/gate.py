"""A bounded queue in front of each deployment's instances.

Requests wait here (up to ``max_waiting``) until an instance has a free slot; the request goes to
the ready instance with the fewest requests in flight. Beyond ``max_waiting`` the caller gets
QueueFull at once. A waiter whose client disconnects leaves the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from modelyard.errors import QueueFull


class ClientGone(Exception):
    """The client disconnected while its request waited."""


@dataclass
class Slot:
    """One ready instance as the gate sees it."""

    instance_id: int
    url: str
    capacity: int
    adapter: str | None = None  # the LoRA the instance was started with
    in_flight: int = 0


@dataclass
class Gate:
    name: str
    max_waiting: int
    slots: dict[int, Slot] = field(default_factory=dict)
    waiting: int = 0
    draining: bool = False  # a switch or unload waits for the requests in flight; hand out nothing
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    last_used: float = field(default_factory=time.monotonic)

    def notify(self) -> None:
        """Wake the waiters: an instance became ready, went away, or freed a slot."""
        self._changed.set()

    def set_slot(self, slot: Slot) -> None:
        old = self.slots.get(slot.instance_id)
        if old is not None:
            slot.in_flight = old.in_flight
        self.slots[slot.instance_id] = slot
        self.notify()

    def drop_slot(self, instance_id: int) -> None:
        self.slots.pop(instance_id, None)
        self.notify()

    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self.slots.values())

    def _pick(self, adapter: str | None) -> Slot | None:
        if self.draining:
            return None
        free = [s for s in self.slots.values() if s.in_flight < s.capacity and s.adapter == adapter]
        return min(free, key=lambda s: s.in_flight) if free else None

    async def acquire(
        self,
        adapter: str | None = None,
        *,
        disconnected: Callable[[], Awaitable[bool]] | None = None,
        failed: Callable[[], BaseException | None] | None = None,
        timeout: float | None = None,
    ) -> Slot:
        """Wait for a free slot on an instance serving ``adapter``. ``disconnected`` is polled so that a client who left stops
        waiting; ``failed`` reports a load that will not come (its error is raised)."""
        slot = self._pick(adapter)
        if slot is not None and self.waiting == 0:
            slot.in_flight += 1
            self.last_used = time.monotonic()
            return slot
        if self.waiting >= self.max_waiting:
            raise QueueFull(self.name, self.max_waiting)
        self.waiting += 1
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                slot = self._pick(adapter)
                if slot is not None:
                    slot.in_flight += 1
                    self.last_used = time.monotonic()
                    return slot
                if failed is not None and (err := failed()) is not None:
                    raise err
                if disconnected is not None and await disconnected():
                    raise ClientGone(self.name)
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"no instance of {self.name} became free in time")
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout=0.25)
        finally:
            self.waiting -= 1

    def release(self, slot: Slot) -> None:
        slot.in_flight = max(0, slot.in_flight - 1)
        self.last_used = time.monotonic()
        self.notify()
