"""The bounded queue in front of each model's instances.

Requests wait here (up to ``max_waiting`` of them, each up to ``timeout`` seconds) until an
instance has room (its slots, and for an engine with a queue of its own as many again, so that a
freed slot starts its next request at once); a request goes to the ready instance with the fewest
requests in flight; of those as free, the one that served the request's prompt prefix before,
whose prompt cache holds it (session affinity, which never unbalances the load), and for a new
prefix the one whose cache holds the fewest conversations. A freed place goes straight to the
first waiter that can use it: first come first served, and no waiter wakes for nothing.
Beyond ``max_waiting`` the caller gets QueueFull at once, past ``timeout`` QueueTimeout. A start
that fails while requests wait hands them its error (``fail``); a waiter whose client disconnects
leaves the queue. Slots of instances being drained (an unload, a switch) take nothing new.

A low-priority request (a batch's: its ``Yielding``) is served after every interactive one: it
takes a slot only while no interactive request waits for one, on an instance serving no
interactive request, and leaves one of its engine slots free for the next interactive request to
start at once (an engine of one slot runs one low request at a time); and with ``idle`` set,
only once the instance has served no interactive request for that long (a batch fills the pauses
of the interactive traffic: on an engine whose compute both would share, a batch request beside
an interactive one slows it). An interactive request
that takes a slot on an instance running low ones, or waits while they hold places it could use,
preempts them: their ``preempted`` is set, and
whoever sent them stops them (an engine shares its compute between the sequences it runs) and
sends them again later. Low requests count against neither ``max_waiting`` nor ``timeout``: a
batch bounds its own requests in flight, and may wait for as long as it takes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from modelyard.errors import ModelyardError, QueueFull, QueueTimeout
from modelyard.runtime.clock import Clock, SystemClock

POLL = 0.25  # seconds between looks at whether a waiting client is still there (and the deadline)
EVERY: Any = object()  # as an adapter: the waiters of every adapter


class ClientGone(Exception):
    """The client disconnected while its request waited."""


@dataclass(eq=False)
class Yielding:
    """A low-priority request, which yields to the interactive ones: ``preempted`` is set when
    one takes a slot on its instance (``preemptible``: when stopping it saves the engine's work,
    as for a streamed generation)."""

    preemptible: bool = True
    preempted: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Slot:
    """One ready instance as the queue sees it."""

    instance_id: int
    url: str
    capacity: int  # requests it takes at once: its slots, and those its own queue holds
    adapter: str | None = None  # the LoRA the instance was started with
    headers: dict[str, str] = field(default_factory=dict)  # what requests to it carry: its key
    slots: int = 0  # the engine's slots (requests it runs at once, not queued); 0: its capacity
    in_flight: int = 0
    yielding: set[Yielding] = field(default_factory=set)  # of those in flight, the low-priority ones
    draining: bool = False
    interactive_at: float = float("-inf")  # when it last took or finished an interactive request

    def takes(self, adapter: str | None, low: bool) -> bool:
        """Whether it has room for a request for ``adapter`` (of low priority)."""
        if self.draining or self.adapter != adapter or self.in_flight >= self.capacity:
            return False
        lows = len(self.yielding)
        return not low or (self.in_flight == lows and lows < max(1, (self.slots or self.capacity) - 1))


@dataclass(eq=False)
class _Waiter:
    """A request in line: the slot is handed to its future when its turn comes."""

    adapter: Any
    future: asyncio.Future[Slot]
    prefix: int | None = None
    low: Yielding | None = None


def _preempt(slot: Slot) -> None:
    for low in slot.yielding:
        if low.preemptible:
            low.preempted.set()


HOMES = 4096  # prompt prefixes remembered per model, the least recently used forgotten first


@dataclass
class Queue:
    name: str
    max_waiting: int
    timeout: float = 0.0  # seconds a request may wait; 0 = no limit
    clock: Clock = field(default_factory=SystemClock)
    idle: float = 0.0  # seconds an instance serves no interactive request before a low one starts
    _waking: asyncio.Task[None] | None = None  # the wake-up of the low waiters once an instance idles
    slots: dict[int, Slot] = field(default_factory=dict)
    waiting: int = 0
    failures: dict[Any, ModelyardError] = field(default_factory=dict)  # adapter -> why none is coming
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    last_used: float = 0.0
    # the waiters in the order they came; a freed slot goes straight to the first that can use it
    _line: deque[_Waiter] = field(default_factory=deque)
    _dispatching: bool = False
    # prompt prefix -> the instance that last served it (its prompt cache holds it)
    _homes: OrderedDict[int, int] = field(default_factory=OrderedDict)
    _held: Counter[int] = field(default_factory=Counter)  # instance -> the prefixes it is home to
    affinity_hits: int = 0  # requests that went to their prefix's instance
    affinity_misses: int = 0  # requests whose prefix's instance was busy or gone

    def __post_init__(self) -> None:
        self.last_used = self.clock.now()

    def notify(self) -> None:
        """Something changed (an instance became ready, went away, failed, or freed a slot): hand
        free slots to the waiters in their order (once the changes of this turn of the loop are
        all in: an instance that just exited is out of the rotation by then), and wake whoever
        waits for the queue to settle."""
        self._changed.set()
        if self._line and not self._dispatching:
            self._dispatching = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        """Each waiter in turn gets a free slot serving its adapter, or the failure that says
        none is coming; once an adapter has no free slot, its later waiters keep waiting. The
        interactive waiters go first; a low one only when none of its adapter is left waiting.
        No waiter wakes for nothing, so a release costs the same with 1 or 1,000 waiting."""
        self._dispatching = False
        blocked: set[Any] = set()  # adapters an interactive waiter still waits for
        for low in (False, True):
            skip = set(blocked)
            for w in self._line:
                if (w.low is not None) != low or w.future.done() or w.adapter in skip:
                    continue
                slot = self._pick(w.adapter, w.prefix, low)
                if slot is not None:
                    w.future.set_result(self._take(slot, w.prefix, w.low))
                elif (failed := self.failure(w.adapter)) is not None:
                    w.future.set_exception(failed)
                else:
                    skip.add(w.adapter)
            blocked = skip
        self._wake_when_idle()

    def _wake_when_idle(self) -> None:
        """Low waiters held back only by an instance's recent interactive request: look again
        once it has been idle long enough (no release comes to say so)."""
        if not self.idle or (self._waking is not None and not self._waking.done()):
            return
        if not any(w.low is not None and not w.future.done() for w in self._line):
            return
        now = self.clock.now()
        due = [
            s.interactive_at + self.idle - now
            for s in self.slots.values()
            if s.takes(s.adapter, True) and s.interactive_at + self.idle > now
        ]
        if due:
            self._waking = asyncio.ensure_future(self._wake_after(min(due)))

    async def _wake_after(self, seconds: float) -> None:
        await self.clock.sleep(seconds)
        self.notify()

    def set_slot(self, slot: Slot) -> None:
        old = self.slots.get(slot.instance_id)
        if old is not None:
            slot.in_flight, slot.yielding, slot.interactive_at = (
                old.in_flight,
                old.yielding,
                old.interactive_at,
            )
        self.slots[slot.instance_id] = slot
        self.failures.pop(slot.adapter, None)
        self.failures.pop(EVERY, None)
        self.notify()

    def drop_slot(self, instance_id: int) -> None:
        self.slots.pop(instance_id, None)
        self.notify()

    def fail(self, error: ModelyardError | None, adapter: Any = EVERY) -> None:
        """No instance serving ``adapter`` (or any) is coming for now: its waiters, and newcomers
        until ``error`` is cleared with None or such an instance is ready, get ``error``."""
        if error is None:  # a new try: for this adapter, the model as a whole comes back too
            self.failures.pop(adapter, None)
            self.failures.pop(EVERY, None)
        else:
            self.failures[adapter] = error
        self.notify()

    def failure(self, adapter: str | None) -> ModelyardError | None:
        return self.failures.get(adapter) or self.failures.get(EVERY)

    def serving(self, adapter: str | None) -> bool:
        """Whether an instance serving ``adapter`` is in the rotation."""
        return any(s.adapter == adapter for s in self.slots.values())

    def drain(self, ids: Iterable[int], on: bool = True) -> None:
        for i in ids:
            if i in self.slots:
                self.slots[i].draining = on
        self.notify()

    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self.slots.values())

    def in_flight_of(self, ids: Iterable[int]) -> int:
        return sum(self.slots[i].in_flight for i in ids if i in self.slots)

    def _pick(self, adapter: str | None, prefix: int | None = None, low: bool = False) -> Slot | None:
        """The free instance with the fewest requests in flight; of those as free, the one that
        served the request's prefix before (its prompt cache holds it): affinity never unbalances.
        A new prefix goes to the one home to the fewest, so conversations spread over the caches."""
        best: Slot | None = None
        new = prefix is not None and prefix not in self._homes
        now = self.clock.now()

        def fits(s: Slot) -> bool:
            return s.takes(adapter, low) and not (low and now - s.interactive_at < self.idle)

        for s in self.slots.values():
            if not fits(s):
                continue
            if (
                best is None
                or s.in_flight < best.in_flight
                or (
                    new
                    and s.in_flight == best.in_flight
                    and self._held[s.instance_id] < self._held[best.instance_id]
                )
            ):
                best = s
        if prefix is None or best is None or prefix not in self._homes:
            return best
        home = self.slots.get(self._homes[prefix])
        if home is not None and fits(home) and home.in_flight <= best.in_flight:
            self.affinity_hits += 1
            return home
        self.affinity_misses += 1
        return best

    def _take(self, slot: Slot, prefix: int | None = None, low: Yielding | None = None) -> Slot:
        slot.in_flight += 1
        if low is not None:
            slot.yielding.add(low)
        else:  # the low requests there give way
            _preempt(slot)
            slot.interactive_at = self.clock.now()
        self.last_used = self.clock.now()
        if prefix is not None:
            before = self._homes.get(prefix)
            if before != slot.instance_id:
                if before is not None:
                    self._held[before] -= 1
                self._held[slot.instance_id] += 1
            self._homes[prefix] = slot.instance_id
            self._homes.move_to_end(prefix)
            if len(self._homes) > HOMES:
                self._held[self._homes.popitem(last=False)[1]] -= 1
        return slot

    async def acquire(
        self,
        adapter: str | None = None,
        *,
        disconnected: Callable[[], Awaitable[bool]] | None = None,
        prefix: int | None = None,
        low: Yielding | None = None,
    ) -> Slot:
        """Wait for a free slot on an instance serving ``adapter``, first come first served among
        the requests for it (of its priority: ``low``, after the others). ``disconnected`` is
        polled so that a client who left stops waiting. ``prefix``: a hash of the prompt's
        beginning, for session affinity."""
        lows = low is not None
        if not any(
            w.adapter == adapter and not w.future.done() and (lows or w.low is None) for w in self._line
        ):
            slot = self._pick(adapter, prefix, lows)
            if slot is not None:  # nobody waits for it (those handed one have theirs)
                return self._take(slot, prefix, low)
        if (failed := self.failure(adapter)) is not None:
            raise failed
        if not lows and self.waiting >= self.max_waiting:
            raise QueueFull(self.name, self.max_waiting)
        waiter = _Waiter(adapter, asyncio.get_running_loop().create_future(), prefix, low)
        self._line.append(waiter)
        if not lows:  # low requests hold the places it waits for: they give way
            for slot in self.slots.values():
                if slot.adapter == adapter:
                    _preempt(slot)
        else:
            self._wake_when_idle()
        self.waiting += not lows
        deadline = self.clock.now() + self.timeout if self.timeout and not lows else None
        served = False
        try:
            while True:
                pause = POLL if deadline is None else max(0.0, min(POLL, deadline - self.clock.now()))
                await asyncio.wait({waiter.future}, timeout=pause)
                if waiter.future.done():
                    slot = waiter.future.result()  # or the failure handed to it
                    served = True
                    return slot
                if deadline is not None and self.clock.now() >= deadline:
                    raise QueueTimeout(self.name, self.timeout)
                if disconnected is not None and await disconnected():
                    raise ClientGone(self.name)
        finally:
            self.waiting -= not lows
            self._line.remove(waiter)
            if not waiter.future.done():
                waiter.future.cancel()
            elif not waiter.future.cancelled() and waiter.future.exception() is None and not served:
                self.release(waiter.future.result(), low)  # handed over as it gave up: the next may have it

    async def _changes(self, remaining: float | None) -> None:
        """Until something changes, the deadline passes, or it is time to look at the client."""
        self._changed.clear()
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._changed.wait())]
        if remaining is not None:
            waits.append(asyncio.ensure_future(self.clock.sleep(remaining)))
        try:
            await asyncio.wait(waits, timeout=POLL, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*waits, return_exceptions=True)

    def release(self, slot: Slot, low: Yielding | None = None) -> None:
        slot.in_flight = max(0, slot.in_flight - 1)
        if low is not None:
            slot.yielding.discard(low)
        else:
            slot.interactive_at = self.clock.now()
        self.last_used = self.clock.now()
        self.notify()

    async def settled(self, ids: Iterable[int], seconds: float) -> bool:
        """Wait until the requests in flight on these instances have finished, at most
        ``seconds``; whether they did."""
        ids = list(ids)
        deadline = self.clock.now() + seconds
        while self.in_flight_of(ids):
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                return False
            await self._changes(remaining)
        return True
