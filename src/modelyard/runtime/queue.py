"""The bounded queue in front of each model's instances.

Requests wait here (up to ``max_waiting`` of them, each up to its tier's time limit) until an
instance has room (its slots, and for an engine with a queue of its own as many again, so that a
freed slot starts its next request at once). Which instance a request goes to is routing's
choice (routing.py): for a text request, the one where its prefill and wait cost least, given
what each replica's prompt cache holds, and it may wait for a busy replica that holds its
prompt; for the others, the one with the fewest requests in flight. A freed place goes straight
to the first waiter that can use it, and no waiter wakes for nothing.

Flow control: each request comes with its key (``Ask.account``) and tier (``Tier``: a key's,
which a request may lower). The higher tier is served first; within a tier the keys take turns
(start-time fair queuing: each request is tagged after its key's requests before it, and never
before the request served last, so one key with 200 requests cannot starve five others, and a
quiet key saves up no turns); first come first served within a key. While several keys wait, a
request goes to an instance only when one of its engine slots is free, not into the engine's
own first-come-first-served queue, so that each freed slot goes to the next in the fair order.
When ``max_waiting`` wait, a newcomer whose key holds its share of the places (``max_waiting``
over the keys waiting) is refused (OverShare, 429), and one whose key holds
less takes the place of the latest waiter of the key most over its share (which gets
OverShare). A request whose wait can be seen to exceed its tier's limit (from the requests
before it and how long requests take here) is refused at once, and one that waits past it gets
QueueTimeout (429 both). A start that fails while requests wait hands them its error (``fail``:
no instance can serve, 503); a waiter whose client disconnects leaves the queue. Slots of
instances being drained (an unload, a switch) take nothing new.

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
import itertools
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from modelyard.errors import ModelyardError, OverShare, QueueFull, QueueTimeout
from modelyard.runtime.clock import Clock, SystemClock
from modelyard.runtime.routing import Choice, Prompt, Routing

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


class Tier(IntEnum):
    """Priority classes, OpenAI's service tiers: each key has one (default), and a request may
    lower its own (``service_tier``, or the X-Priority header)."""

    FLEX = 0
    DEFAULT = 1
    PRIORITY = 2

    @classmethod
    def named(cls, name: str) -> Tier:
        """The tier called ``name`` (flex, default, priority); KeyError for another."""
        return cls[name.upper()]

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(eq=False)
class Ask:
    """One request's ask for a slot: who asks (``account``: a key's name; None: the local user),
    at which tier, at low priority (a batch's ``Yielding``) or not, with which prompt (a text
    request's, for routing); then where it went, and what routing expected of it there."""

    prompt: Prompt | None = None
    account: str | None = None
    tier: Tier = Tier.DEFAULT
    low: Yielding | None = None
    tag: float = 0.0  # its place in its tier's fair order (see Queue._tag)
    instance: int | None = None
    taken: float = 0.0  # when it had its slot
    held: int = 0  # characters of its prompt the replica was thought to hold
    hit: bool = False  # counted as a hit (see Routing.took)
    prefill: float = 0.0  # its prefill there, expected, in seconds
    start: float = 0.0  # when its prefill was expected to begin
    end: float = 0.0  # when it is expected to be done


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
    asks: set[Ask] = field(default_factory=set)  # those in flight (of the queue's acquire)

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
    ask: Ask
    seq: int  # its place in the order of arrival
    since: float = 0.0  # when it came
    until: float | None = None  # how long it may wait for the busy replica that holds its prompt
    passed: float | None = None  # when it first let a free slot go, for that replica

    @property
    def low(self) -> Yielding | None:
        return self.ask.low


def _preempt(slot: Slot) -> None:
    for low in slot.yielding:
        if low.preemptible:
            low.preempted.set()


@dataclass
class Queue:
    name: str
    max_waiting: int
    timeout: float = 0.0  # seconds a request may wait; 0 = no limit
    limits: dict[Tier, float] = field(default_factory=dict)  # a tier's own time limit, if not timeout
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
    _arrivals: itertools.count[int] = field(default_factory=itertools.count)
    _virtual: float = 0.0  # the fair order's clock: the tag of the latest request served
    _finish: dict[str | None, float] = field(default_factory=dict)  # each key's latest tag, plus one
    service: float = 0.0  # seconds an interactive request holds its slot (learned; 0: not yet)

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
        """Each waiter in its turn (``_order``) gets a free slot serving its adapter (where
        routing sends it), or the failure that says none is coming; once an adapter has no free
        slot, its later waiters keep waiting (a waiter held for a busy replica that holds its
        prompt lets those behind it have the free ones). The interactive waiters go first; a low
        one only when none of its adapter is left waiting. No waiter wakes for nothing."""
        self._dispatching = False
        now = self.clock.now()
        # keys that wait side by side: the engines' own queues (first come first served) take
        # none of their requests, so that each freed slot goes to the next in the fair order
        shared = len({w.ask.account for w in self._line if w.low is None and not w.future.done()}) > 1
        blocked: set[Any] = set()  # adapters an interactive waiter still waits for
        for low in (False, True):
            skip = set(blocked)
            held: Counter[int] = Counter()  # waiters held for each busy replica, in line so far
            for w in self._order(low):
                if w.future.done() or w.adapter in skip:
                    continue
                waited = now - w.passed if w.passed is not None else 0.0  # for its replica only
                choice = self._pick(w.adapter, w.ask, waited, held, shared)
                w.until = choice.until
                if choice.home is not None and w.passed is None:
                    w.passed = now
                if choice.slot is not None:
                    w.future.set_result(self._take(choice.slot, w.ask))
                elif (failed := self.failure(w.adapter)) is not None:
                    w.future.set_exception(failed)
                elif choice.home is not None:
                    held[choice.home] += 1
                else:
                    skip.add(w.adapter)
            blocked = skip
        self._wake_later(now)

    def _order(self, low: bool) -> list[_Waiter]:
        """The waiters of one priority in the order they are served: the higher tier first, then
        by their tags (the keys in turns), then the earlier."""
        line = [w for w in self._line if (w.low is not None) == low]
        if low or len({(w.ask.account, w.ask.tier) for w in line}) < 2:
            return line  # one key, one tier: the order they came in
        return sorted(line, key=lambda w: (-w.ask.tier, w.ask.tag, w.seq))

    def _tag(self, account: str | None) -> float:
        """Where a request of ``account`` coming now goes in the fair order (start-time fair
        queuing): after the key's own requests before it, and never before the request served
        last (a key that was quiet does not save up turns)."""
        return max(self._virtual, self._finish.get(account, 0.0))

    def _wake_later(self, now: float) -> None:
        """Waiters that a free slot may take later with no release to say so: low ones held back
        by an instance's recent interactive request (until it has idled long enough), and those
        held for a busy replica (until that is no longer worth it). Look again then. ``now``: the
        time read before the waiters were looked at (a later one could pass a time they were
        held to, and no look would come)."""
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
            slot.in_flight, slot.yielding, slot.interactive_at, slot.asks = (
                old.in_flight,
                old.yielding,
                old.interactive_at,
                old.asks,
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

    def oldest(self) -> tuple[str | None, float] | None:
        """The key of the interactive request that has waited longest, and when it came (None:
        none waits)."""
        waiters = [w for w in self._line if w.low is None and not w.future.done()]
        first = min(waiters, key=lambda w: w.since, default=None)
        return (first.ask.account, first.since) if first is not None else None

    def in_flight_of(self, ids: Iterable[int]) -> int:
        return sum(self.slots[i].in_flight for i in ids if i in self.slots)

    def _pick(
        self, adapter: str | None, ask: Ask, waited: float = 0.0, held: Counter[int] | None = None,
        shared: bool = False,
    ) -> Choice:  # fmt: skip
        """Where routing sends ``ask`` for ``adapter`` now (see Routing.choose): of the instances
        with room for it, or None to wait. ``waited``: seconds it has waited so far; ``held``:
        the waiters before it held for each busy instance; ``shared``: keys wait side by side,
        and only a free engine slot counts as room (not the engine's own queue)."""
        now = self.clock.now()
        low = ask.low is not None
        free: list[Slot] = []
        busy: list[Slot] = []
        for s in self.slots.values():
            room = not shared or s.in_flight < (s.slots or s.capacity)
            if room and s.takes(adapter, low) and not (low and now < s.interactive_at + self.idle):
                free.append(s)
            elif not low and not s.draining and s.adapter == adapter:
                busy.append(s)
        return self.routing.choose(free, busy, ask.prompt, now, waited, held or Counter())

    def _take(self, slot: Slot, ask: Ask) -> Slot:
        now = self.clock.now()
        serving = [s for s in self.slots.values() if s.adapter == slot.adapter and not s.draining]
        self.routing.took(slot, ask, serving, now)
        ask.taken = now
        slot.in_flight += 1
        if ask.low is not None:
            slot.yielding.add(ask.low)
        else:  # the low requests there give way
            _preempt(slot)
            slot.interactive_at = now
            self._virtual = max(self._virtual, ask.tag)
        self.last_used = now
        return slot

    async def acquire(
        self,
        adapter: str | None = None,
        *,
        disconnected: Callable[[], Awaitable[bool]] | None = None,
        ask: Ask | None = None,
    ) -> Slot:
        """Wait for a free slot on an instance serving ``adapter``, in the order of flow control
        (``ask``: who asks, at which tier and priority, with which prompt; the same Ask is
        handed to ``release``). ``disconnected`` is polled so that a client who left stops
        waiting."""
        ask = ask if ask is not None else Ask()
        lows = ask.low is not None
        now = self.clock.now()
        if not lows:
            ask.tag = self._tag(ask.account)
        until = None
        if not any(  # (a waiter held for a busy replica does not wait for the free ones)
            w.adapter == adapter and not w.future.done() and (lows or w.low is None) and w.until is None
            for w in self._line
        ):
            choice = self._pick(adapter, ask)
            if choice.slot is not None:  # nobody waits for it (those handed one have theirs)
                if not lows:
                    self._finish[ask.account] = ask.tag + 1
                return self._take(choice.slot, ask)
            until = choice.until
        if (failed := self.failure(adapter)) is not None:
            raise failed
        limit = self.limits.get(ask.tier, self.timeout)
        if not lows:
            self._make_room(ask)
            self._refuse_a_long_wait(ask, limit)
            self._finish[ask.account] = ask.tag + 1
        waiter = _Waiter(
            adapter, asyncio.get_running_loop().create_future(), ask, next(self._arrivals), now, until,
            now if until is not None else None,
        )  # fmt: skip
        self._line.append(waiter)
        if not lows:  # low requests hold the places it waits for: they give way
            for slot in self.slots.values():
                if slot.adapter == adapter:
                    _preempt(slot)
        self._wake_later(now)
        self.waiting += not lows
        deadline = now + limit if limit and not lows else None
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
                    raise QueueTimeout(self.name, limit)
                if disconnected is not None and await disconnected():
                    raise ClientGone(self.name)
        finally:
            self.waiting -= not lows
            self._line.remove(waiter)
            if not waiter.future.done():
                waiter.future.cancel()
            elif not waiter.future.cancelled() and waiter.future.exception() is None and not served:
                self.release(waiter.future.result(), ask)  # handed over as it gave up: the next may have it

    def _make_room(self, ask: Ask) -> None:
        """With ``max_waiting`` interactive requests waiting: refuse ``ask`` if its key holds its
        share of the places (OverShare), else make room by refusing the latest waiter of the
        key most over its share."""
        line = [w for w in self._line if w.low is None and not w.future.done()]
        if len(line) < self.max_waiting:
            return
        per_key = Counter(w.ask.account for w in line)
        keys = len(per_key | Counter({ask.account: 1}))
        share = self.max_waiting / keys
        heaviest, most = max(per_key.items(), key=lambda kv: kv[1], default=(None, 0))
        if per_key[ask.account] >= share or most <= share or not line:
            if keys == 1:
                raise QueueFull(self.name, self.max_waiting)
            raise OverShare(self.name, ask.account, per_key[ask.account], self.max_waiting, keys)
        latest = max((w for w in line if w.ask.account == heaviest), key=lambda w: w.seq)
        latest.future.set_exception(OverShare(self.name, heaviest, most, self.max_waiting, keys))

    def _refuse_a_long_wait(self, ask: Ask, limit: float) -> None:
        """Refuse at once a request whose wait can be seen to exceed ``limit``: the requests
        served before it (by ``_order``), each holding a slot for as long as requests do here,
        over the slots of the instances."""
        places = sum(s.capacity for s in self.slots.values() if not s.draining)
        if not limit or not self.service or not places:
            return
        mine = (-ask.tier, ask.tag)
        ahead = sum(
            1
            for w in self._line
            if w.low is None and not w.future.done() and (-w.ask.tier, w.ask.tag) <= mine
        )
        wait = (ahead + 1) * self.service / places
        if wait > limit:
            raise QueueTimeout(self.name, limit, expected=wait)

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

    def release(self, slot: Slot, ask: Ask | None = None) -> None:
        """A request on ``slot`` ended (``ask``: the one acquire took it with; None: any one)."""
        now = self.clock.now()
        if ask is None:
            ask = next((a for a in slot.asks if a.low is None), None)
        slot.in_flight = max(0, slot.in_flight - 1)
        if ask is not None:
            self.routing.done(slot, ask, now)
        if ask is not None and ask.low is not None:
            slot.yielding.discard(ask.low)
        else:
            slot.interactive_at = now
            if ask is not None:
                taken = now - ask.taken
                self.service = taken if not self.service else self.service + 0.2 * (taken - self.service)
        self.last_used = now
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
