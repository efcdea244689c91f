"""The queue is first come first served: under load, requests for a model get its slots in the
order they came, whichever wakes first; a client that leaves gives its turn to the next."""

from __future__ import annotations

import asyncio
import random

from modelyard.runtime.queue import Ask, Queue, Slot, Yielding


def test_waiters_are_served_in_the_order_they_came() -> None:
    async def scenario() -> list[int]:
        queue = Queue("m", max_waiting=100)
        queue.set_slot(Slot(1, "http://a", capacity=1))
        queue.set_slot(Slot(2, "http://b", capacity=1))
        served: list[int] = []
        held = [await queue.acquire(), await queue.acquire()]  # both slots busy

        async def client(i: int) -> None:
            async def disconnected() -> bool:  # the gateway asks the client's connection: it takes a while
                await asyncio.sleep(0.0005 * ((11 * i) % 7))
                return False

            slot = await queue.acquire(disconnected=disconnected)
            served.append(i)
            await asyncio.sleep(0.001 * ((7 * i) % 5))  # answers of different lengths
            queue.release(slot)

        tasks = []
        for i in range(40):
            tasks.append(asyncio.create_task(client(i)))
            await asyncio.sleep(0)  # it reaches the queue before the next one
        await asyncio.sleep(0.01)
        assert queue.waiting == 40
        for slot in held:
            queue.release(slot)
        await asyncio.gather(*tasks)
        return served

    assert asyncio.run(scenario()) == list(range(40))


def test_a_client_that_leaves_gives_its_turn_to_the_next() -> None:
    async def scenario() -> list[str]:
        queue = Queue("m", max_waiting=10)
        queue.set_slot(Slot(1, "http://a", capacity=1))
        busy = await queue.acquire()
        order: list[str] = []

        async def client(name: str) -> None:
            slot = await queue.acquire()
            order.append(name)
            queue.release(slot)

        first = asyncio.create_task(client("first"))
        await asyncio.sleep(0)
        second = asyncio.create_task(client("second"))
        await asyncio.sleep(0)
        first.cancel()  # the first one goes away while it waits
        await asyncio.sleep(0)
        queue.release(busy)
        await second
        assert queue.waiting == 0
        return order

    assert asyncio.run(scenario()) == ["second"]


def test_a_newcomer_takes_a_free_slot_while_the_one_before_it_is_being_handed_its_own() -> None:
    async def scenario() -> None:
        queue = Queue("m", max_waiting=10)
        queue.set_slot(Slot(1, "http://a", capacity=2))
        held = [await queue.acquire(), await queue.acquire()]
        first = asyncio.create_task(queue.acquire())
        await asyncio.sleep(0)
        queue.release(held[0])
        queue.release(held[1])
        await asyncio.sleep(0)  # both hand-offs ran; the first waiter has not resumed yet
        assert not first.done()
        second = await asyncio.wait_for(queue.acquire(), 0.1)  # the other place is free: at once
        assert (await first).instance_id == second.instance_id == 1

    asyncio.run(scenario())


def test_a_batch_request_waits_for_every_interactive_one_and_gives_way_to_one() -> None:
    async def scenario() -> None:
        queue = Queue("m", max_waiting=1)
        slot = Slot(1, "http://a", capacity=4, slots=2)
        queue.set_slot(slot)
        lows = [Yielding(), Yielding(), Yielding(preemptible=False)]
        asks = [Ask(low=low) for low in lows]
        first = await queue.acquire(ask=asks[0])
        # the engine's second slot stays for an interactive request: a second low one waits
        second = asyncio.create_task(queue.acquire(ask=asks[1]))
        third = asyncio.create_task(queue.acquire(ask=asks[2]))  # low waiters are not held to max_waiting
        await asyncio.sleep(0.01)
        assert not second.done()
        assert not third.done()
        assert queue.waiting == 0
        assert not lows[0].preempted.is_set()
        interactive = await queue.acquire()  # at once, beside the batch's request, which gives way
        assert slot.in_flight == 2
        assert lows[0].preempted.is_set()
        queue.release(first, asks[0])
        await asyncio.sleep(0.01)
        assert not second.done(), "a low request started beside an interactive one"
        busy = [await queue.acquire() for _ in range(3)]  # the instance is full
        waiting = asyncio.create_task(queue.acquire())
        await asyncio.sleep(0.01)
        queue.release(interactive)  # the place goes to the interactive request in line
        await asyncio.sleep(0.01)
        assert waiting.done()
        assert not second.done()
        for held in (*busy, await waiting):
            queue.release(held)
        await asyncio.sleep(0.01)
        assert second.done()
        assert not third.done()
        queue.release(await second, asks[1])
        await asyncio.sleep(0.01)
        assert third.done()
        assert slot.yielding == {lows[2]}
        other = await queue.acquire()
        assert not lows[2].preempted.is_set()  # not preemptible: it runs on
        queue.release(other)

    asyncio.run(scenario())


def test_an_interactive_request_that_waits_for_a_batch_request_preempts_it() -> None:
    async def scenario() -> None:
        queue = Queue("m", max_waiting=1)
        queue.set_slot(Slot(1, "http://a", capacity=1, slots=1))
        low = Yielding()
        held = await queue.acquire(ask=Ask(low=low))
        interactive = asyncio.create_task(queue.acquire())
        await asyncio.sleep(0.01)
        assert low.preempted.is_set()  # its sender stops it, which frees the slot
        assert not interactive.done()
        again = asyncio.create_task(queue.acquire(ask=Ask(low=Yielding())))  # sent again: after it
        queue.release(held, next(iter(held.asks)))
        await asyncio.sleep(0.01)
        assert interactive.done()
        assert not again.done()
        queue.release(await interactive)
        await asyncio.sleep(0.01)
        assert again.done()

    asyncio.run(scenario())


def test_a_batch_request_waits_until_the_instance_has_been_idle() -> None:
    from runtime.fake_clock import FakeClock, settle

    async def scenario() -> None:
        clock = FakeClock()
        queue = Queue("m", max_waiting=1, clock=clock, idle=1.0)
        queue.set_slot(Slot(1, "http://a", capacity=4, slots=4))
        queue.release(await queue.acquire())  # an interactive request, just finished
        low = asyncio.create_task(queue.acquire(ask=Ask(low=Yielding())))
        await clock.advance(0.6)
        assert not low.done()
        queue.release(await queue.acquire())  # another: the wait starts over
        await clock.advance(0.6)
        assert not low.done()
        await clock.advance(0.5)  # idle for 1.1 s now: its turn
        await settle()
        assert low.done()

    asyncio.run(scenario())


class _RunningClock:
    """A clock as the server's runs under uvloop: every read finds it a little further on (by
    chance), and a sleep may end up to a millisecond early (libuv counts its timers in ms)."""

    def __init__(self) -> None:
        self._now = 1000.0
        self._steps = random.Random(7)

    def now(self) -> float:
        self._now += self._steps.uniform(0.0, 2e-5)
        return self._now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)
        self._now += max(0.0, seconds - 0.001)


def test_a_batch_request_held_back_is_served_once_the_instance_has_idled_whatever_the_reads() -> None:
    """The next look at the held-back waiters is planned from the time they were looked at: a
    clock read later, already past the time they wait for, would plan none (they would wait
    forever)."""

    async def scenario() -> None:
        queue = Queue("m", max_waiting=1, clock=_RunningClock(), idle=0.01)
        queue.set_slot(Slot(1, "http://a", capacity=4, slots=4))
        for _ in range(20):  # each crosses the moment the instance has idled at another read
            queue.release(await queue.acquire())  # an interactive request, just finished
            low = Ask(low=Yielding())
            queue.release(await asyncio.wait_for(queue.acquire(ask=low), timeout=10), low)

    asyncio.run(scenario())
