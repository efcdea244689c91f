"""Flow control in the queue (runtime/queue.py), on a fake clock: tiers, fair shares between
keys, refusals that say which (over its share: 429; a wait that cannot make its limit: 429 at
once), each tier's own time limit."""

from __future__ import annotations

import asyncio

import pytest

from modelyard.errors import OverShare, QueueFull, QueueTimeout
from modelyard.http_errors import OPENAI
from modelyard.runtime.queue import Ask, Queue, Slot, Tier
from runtime.fake_clock import FakeClock, settle
from runtime.fakes import run


def one_slot(max_waiting: int = 10, **limits: float) -> tuple[Queue, FakeClock]:
    clock = FakeClock()
    queue = Queue("m", max_waiting=max_waiting, timeout=300, clock=clock)
    queue.limits = {Tier.named(t): s for t, s in limits.items()}
    queue.set_slot(Slot(1, "http://a", capacity=1))
    return queue, clock


async def served_in_turn(queue: Queue, holder: Ask, asks: list[Ask]) -> list[Ask]:
    """Who gets the slot in turn, from ``holder`` on, each released at once."""
    slot = next(iter(queue.slots.values()))
    tasks = {asyncio.create_task(queue.acquire(ask=a)): a for a in asks}
    await settle()
    order = []
    queue.release(slot, holder)
    while tasks:
        await settle()
        (done,) = [t for t in tasks if t.done()]
        ask = tasks.pop(done)
        order.append(ask)
        queue.release(await done, ask)
    return order


@run
async def test_the_higher_tier_goes_first_whenever_it_came() -> None:
    queue, _ = one_slot()
    holder = Ask()
    await queue.acquire(ask=holder)
    flex, default, priority = Ask(tier=Tier.FLEX), Ask(tier=Tier.DEFAULT), Ask(tier=Tier.PRIORITY)
    assert await served_in_turn(queue, holder, [flex, default, priority]) == [priority, default, flex]


@run
async def test_keys_share_the_slots_fairly_within_a_tier() -> None:
    """One key with many requests waiting does not hold back another's: the keys take turns
    (a key that was served goes after those that were not), first come first served within a key."""
    queue, _ = one_slot()
    holder = Ask(account="heavy")
    await queue.acquire(ask=holder)
    heavy = [Ask(account="heavy") for _ in range(4)]
    light = [Ask(account="light"), Ask(account="light")]
    other = Ask(account="other")
    order = await served_in_turn(queue, holder, [*heavy, *light, other])
    # heavy had the slot: light's first and other's go before heavy's next; then in turns
    assert order == [light[0], other, heavy[0], light[1], heavy[1], heavy[2], heavy[3]]


@run
async def test_while_keys_wait_side_by_side_no_request_goes_to_an_engines_own_queue() -> None:
    queue = Queue("m", max_waiting=10, clock=FakeClock())
    queue.set_slot(Slot(1, "http://a", capacity=2, slots=1))  # one slot, one more in its queue
    running = [Ask(account="heavy"), Ask(account="heavy")]
    slot = await queue.acquire(ask=running[0])
    await queue.acquire(ask=running[1])  # nobody waits: into the engine's queue, to start at once
    heavy = asyncio.create_task(queue.acquire(ask=Ask(account="heavy")))
    light = asyncio.create_task(queue.acquire(ask=Ask(account="light")))
    await settle()
    queue.release(slot, running[0])  # the engine starts the one in its queue
    await settle()
    assert not heavy.done()
    assert not light.done()  # not behind it in the engine's queue: it waits for the slot
    queue.release(slot, running[1])
    await settle()
    assert light.done()  # its turn, before heavy's next
    assert not heavy.done()
    heavy.cancel()


@run
async def test_a_key_over_its_share_of_a_full_queue_gets_429_and_never_keeps_others_out() -> None:
    queue, _ = one_slot(max_waiting=4)
    await queue.acquire(ask=Ask(account="heavy"))
    heavy = [asyncio.create_task(queue.acquire(ask=Ask(account="heavy"))) for _ in range(4)]
    await settle()
    with pytest.raises(QueueFull, match="4 requests are already waiting"):  # one key: the queue is full
        await queue.acquire(ask=Ask(account="heavy"))
    # a second key still gets in: the latest of heavy's waiters makes room for it
    light = asyncio.create_task(queue.acquire(ask=Ask(account="light")))
    await settle()
    assert not light.done()
    assert heavy[3].done()
    with pytest.raises(OverShare) as refused:
        heavy[3].result()
    assert refused.value.message == (
        "the key 'heavy' has 4 requests waiting for 'm': its share of the 4 places while 2 keys wait"
    )
    with pytest.raises(OverShare):  # heavy holds more than its share: refused at once
        await queue.acquire(ask=Ask(account="heavy"))
    answer = OPENAI.answer(refused.value)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "5"
    for task in [*heavy[:3], light]:
        task.cancel()


@run
async def test_a_wait_that_cannot_make_its_limit_is_refused_at_once() -> None:
    queue, clock = one_slot(default=25)
    first = Ask()
    slot = await queue.acquire(ask=first)
    await clock.advance(10)  # a request holds the slot 10 s here
    queue.release(slot, first)
    holder = Ask()
    await queue.acquire(ask=holder)
    waiting = [asyncio.create_task(queue.acquire(ask=Ask())) for _ in range(2)]
    await settle()
    # two before it, then its turn: about 30 s, past the 25 s limit
    with pytest.raises(QueueTimeout) as refused:
        await queue.acquire(ask=Ask())
    assert refused.value.message == "'m' is busy: a slot would be free in about 30 s, past the 25 s limit"
    assert OPENAI.answer(refused.value).status_code == 429
    # a priority request goes before them: 10 s, within its limit
    priority = asyncio.create_task(queue.acquire(ask=Ask(tier=Tier.PRIORITY)))
    await settle()
    assert queue.waiting == 3
    for task in [*waiting, priority]:
        task.cancel()


@run
async def test_each_tier_waits_its_own_limit() -> None:
    queue, clock = one_slot(flex=5)
    await queue.acquire(ask=Ask())
    flex = asyncio.create_task(queue.acquire(ask=Ask(tier=Tier.FLEX)))
    default = asyncio.create_task(queue.acquire(ask=Ask()))
    await clock.advance(6)
    with pytest.raises(QueueTimeout, match="within 5 s"):
        await flex
    assert not default.done()  # 300 s for the default tier
    default.cancel()
