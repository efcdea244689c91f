"""The bounded queue in front of each model's instances.

Requests wait here (up to ``max_waiting`` of them, each up to ``timeout`` seconds) until an
instance has room (its slots, and for an engine with a queue of its own as many again, so that a
freed slot starts its next request at once). Which instance a request goes to is routing's
choice (routing.py): for a text request, the one where its prefill and wait cost least, given
what each replica's prompt cache holds, and it may wait for a busy replica that holds its
prompt; for the others, the one with the fewest requests in flight. A freed place goes straight
to the first waiter that can use it: first come first served, and no waiter wakes for nothing.
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
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from modelyard.errors import ModelyardError, QueueFull, QueueTimeout
from modelyard.runtime.clock import Clock, SystemClock
from modelyard.runtime.routing import Choice, Route, Routing

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
    cache_tokens: int | None = None  # prompt tokens its engine keeps for reuse; None: not known
    routes: set[Route] = field(default_factory=set)  # of those in flight, the routed ones

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
    route: Route | None = None
    low: Yielding | None = None
    since: float = 0.0  # when it came
    until: float | None = None  # how long it may wait for the busy replica that holds its prompt


def _preempt(slot: Slot) -> None:
    for low in slot.yielding:
        if low.preemptible:
            low.preempted.set()


@dataclass
class Queue:
    name: str
    max_waiting: int
    timeout: float = 0.0  # seconds a request may wait; 0 = no limit
    clock: Clock = field(default_factory=SystemClock)
    idle: float = 0.0  # seconds an instance serves no interactive request before a low one starts
    _waking: asyncio.Task[None] | None = None  # the next look at waiters held back (see _wake_later)
    _waking_at: float = 0.0
    slots: dict[int, Slot] = field(default_factory=dict)
    waiting: int = 0
    failures: dict[Any, ModelyardError] = field(default_factory=dict)  # adapter -> why none is coming
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    last_used: float = 0.0
    # the waiters in the order they came; a freed slot goes straight to the first that can use it
    _line: deque[_Waiter] = field(default_factory=deque)
    _dispatching: bool = False
    routing: Routing = field(default_factory=Routing)

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
        """Each waiter in turn gets a free slot serving its adapter (where routing sends it), or
        the failure that says none is coming; once an adapter has no free slot, its later
        waiters keep waiting (a waiter held for a busy replica that holds its prompt lets those
        behind it have the free ones). The interactive waiters go first; a low one only when
        none of its adapter is left waiting. No waiter wakes for nothing, so a release costs the
        same with 1 or 1,000 waiting."""
        self._dispatching = False
        now = self.clock.now()
        blocked: set[Any] = set()  # adapters an interactive waiter still waits for
        for low in (False, True):
            skip = set(blocked)
            held: Counter[int] = Counter()  # waiters held for each busy replica, in line so far
            for w in self._line:
                if (w.low is not None) != low or w.future.done() or w.adapter in skip:
                    continue
                choice = self._pick(w.adapter, w.route, low, now - w.since, held)
                w.until = choice.until
                if choice.slot is not None:
                    w.future.set_result(self._take(choice.slot, w.route, w.low))
                elif (failed := self.failure(w.adapter)) is not None:
                    w.future.set_exception(failed)
                elif choice.home is not None:
                    held[choice.home] += 1
                else:
                    skip.add(w.adapter)
            blocked = skip
        self._wake_later()

    def _wake_later(self) -> None:
        """Waiters that a free slot may take later with no release to say so: low ones held back
        by an instance's recent interactive request (until it has idled long enough), and those
        held for a busy replica (until that is no longer worth it). Look again then."""
        now = self.clock.now()
        due = [w.until for w in self._line if w.until is not None and not w.future.done()]
        if self.idle and any(w.low is not None and not w.future.done() for w in self._line):
            due += [s.interactive_at + self.idle for s in self.slots.values() if s.takes(s.adapter, True)]
        due = [d for d in due if d > now]
        if not due:
            return
        at = min(due)
        if self._waking is not None and not self._waking.done():
            if self._waking_at <= at:
                return
            self._waking.cancel()
        self._waking_at = at
        self._waking = asyncio.ensure_future(self._wake_after(at - now))

    async def _wake_after(self, seconds: float) -> None:
        await self.clock.sleep(seconds)
        self.notify()

    def set_slot(self, slot: Slot) -> None:
        old = self.slots.get(slot.instance_id)
        if old is not None:
            slot.in_flight, slot.yielding, slot.interactive_at, slot.routes = (
                old.in_flight,
                old.yielding,
                old.interactive_at,
                old.routes,
            )
        self.slots[slot.instance_id] = slot
        self.failures.pop(slot.adapter, None)
        self.failures.pop(EVERY, None)
        self.notify()

    def drop_slot(self, instance_id: int) -> None:
        self.slots.pop(instance_id, None)
        self.routing.gone(instance_id)
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

    def _pick(
        self, adapter: str | None, route: Route | None = None, low: bool = False, waited: float = 0.0,
        held: Counter[int] | None = None,
    ) -> Choice:  # fmt: skip
        """Where routing sends a request for ``adapter`` now (see Routing.choose): of the
        instances with room for it, or None to wait. ``waited``: seconds it has waited so far;
        ``held``: the waiters before it held for each busy instance."""
        now = self.clock.now()
        free: list[Slot] = []
        busy: list[Slot] = []
        for s in self.slots.values():
            if s.takes(adapter, low) and not (low and now - s.interactive_at < self.idle):
                free.append(s)
            elif not low and not s.draining and s.adapter == adapter:
                busy.append(s)
        prompt = route.prompt if route is not None else None
        return self.routing.choose(free, busy, prompt, now, waited, held or Counter())

    def _take(self, slot: Slot, route: Route | None = None, low: Yielding | None = None) -> Slot:
        now = self.clock.now()
        if route is not None:
            serving = [s for s in self.slots.values() if s.adapter == slot.adapter and not s.draining]
            self.routing.took(slot, route, serving, now)
        slot.in_flight += 1
        if low is not None:
            slot.yielding.add(low)
        else:  # the low requests there give way
            _preempt(slot)
            slot.interactive_at = now
        self.last_used = now
        return slot

    async def acquire(
        self,
        adapter: str | None = None,
        *,
        disconnected: Callable[[], Awaitable[bool]] | None = None,
        route: Route | None = None,
        low: Yielding | None = None,
    ) -> Slot:
        """Wait for a free slot on an instance serving ``adapter``, first come first served among
        the requests for it (of its priority: ``low``, after the others). ``disconnected`` is
        polled so that a client who left stops waiting. ``route``: a text request's prompt, for
        routing by what each replica's prompt cache holds (the same Route is handed to
        ``release``)."""
        lows = low is not None
        now = self.clock.now()
        until = None
        if not any(  # (a waiter held for a busy replica does not wait for the free ones)
            w.adapter == adapter and not w.future.done() and (lows or w.low is None) and w.until is None
            for w in self._line
        ):
            choice = self._pick(adapter, route, lows)
            if choice.slot is not None:  # nobody waits for it (those handed one have theirs)
                return self._take(choice.slot, route, low)
            until = choice.until
        if (failed := self.failure(adapter)) is not None:
            raise failed
        if not lows and self.waiting >= self.max_waiting:
            raise QueueFull(self.name, self.max_waiting)
        waiter = _Waiter(adapter, asyncio.get_running_loop().create_future(), route, low, now, until)
        self._line.append(waiter)
        if not lows:  # low requests hold the places it waits for: they give way
            for slot in self.slots.values():
                if slot.adapter == adapter:
                    _preempt(slot)
        self._wake_later()
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
                self.release(
                    waiter.future.result(), low, route
                )  # handed over as it gave up: the next may have it

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

    def release(self, slot: Slot, low: Yielding | None = None, route: Route | None = None) -> None:
        slot.in_flight = max(0, slot.in_flight - 1)
        if route is not None:
            self.routing.done(slot, route, self.clock.now())
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
