"""Cache-aware routing over replicas (runtime/routing.py), on the queue with a fake clock: a
request goes where its prompt is cached, waits for a busy replica that holds it when the prefill
saved is worth the wait (and no longer), new conversations spread over the caches, sessions pin,
and what the engines report corrects the guesses."""

from __future__ import annotations

import asyncio

import pytest

from modelyard.runtime.queue import Ask, Queue, Slot
from modelyard.runtime.routing import BLOCK, STICK, Cache, Prompt, Routing
from runtime.fake_clock import FakeClock, settle
from runtime.fakes import run

SYSTEM = "".join(f"Rule {i}: answer in the voice of a lighthouse keeper. " for i in range(80))  # ~4 KiB


def conversation(*turns: str, system: str = SYSTEM) -> Prompt:
    return Prompt.of(system + "".join(f"\nuser: {t}" for t in turns))


def replicas(policy: str = "prefix", *, queued: int = 0) -> tuple[Queue, FakeClock]:
    """Two replicas of one slot each (and ``queued`` more in each engine's own queue); a prefill
    costs 10 ms per character until the engines say otherwise."""
    clock = FakeClock()
    queue = Queue("m", max_waiting=10, clock=clock, routing=Routing(policy=policy))  # type: ignore[arg-type]
    queue.routing.per_char = 0.01
    for i in (1, 2):
        queue.set_slot(Slot(i, f"http://r{i}", capacity=1 + queued, slots=1))
    return queue, clock


def test_a_prompt_is_a_chain_of_blocks_that_a_next_turn_begins_with() -> None:
    first = conversation("hi")
    second = conversation("hi", "and then?")
    assert len(first.blocks) == len(SYSTEM) // BLOCK
    assert second.blocks[: len(first.blocks)] == first.blocks  # what the engine has cached
    other = conversation("hi", system="You are a pirate. " * 300)
    assert not set(other.blocks) & set(first.blocks)
    # a block equal to another's, after a different beginning, is a different block
    shifted = Prompt.of("x" * BLOCK + SYSTEM)
    assert not set(shifted.blocks[1:]) & set(first.blocks)
    assert Prompt.of("short").blocks == ()


def test_a_replica_holds_whole_prompts_the_least_recently_used_going_first() -> None:
    first, grown = conversation("hi"), conversation("hi", "tell me more. " * 30)
    other = conversation("hi", "ask another thing. " * 30)  # the same opening, another turn
    pirate = conversation("hi", system="You are a pirate. " * 300)
    n = len(first.blocks)
    most = len(grown.blocks) + len(other.blocks) + len(pirate.blocks) - 1  # room for two of them
    cache = Cache()
    cache.add(first, most)
    cache.add(grown, most)  # its next turn: the same state, grown
    assert list(cache.prompts) == [grown.blocks[-1]]
    assert cache.size == len(grown.blocks)
    cache.add(other, most)  # its opening is counted again: the engine keeps each state whole
    assert cache.size == len(grown.blocks) + len(other.blocks)
    assert cache.held(grown) == len(grown.blocks)
    cache.add(pirate, most)  # no room for three: the least recently used goes
    assert cache.held(grown) == n  # its opening stays, with the other prompt that has it
    assert cache.held(other) == len(other.blocks)
    cache.forget(other, n)  # the engine held less of it than thought
    assert cache.held(other) == 0  # nothing else has its opening now
    assert cache.held(pirate) == len(pirate.blocks)


@run
async def test_a_conversation_goes_back_to_the_replica_that_caches_it() -> None:
    queue, clock = replicas()
    a = Ask(conversation("hi"))
    one = await queue.acquire(ask=a)
    b = Ask(conversation("hello", system="You are a pirate. " * 300))
    two = await queue.acquire(ask=b)
    assert one.instance_id != two.instance_id  # new conversations: the free replica
    await clock.advance(5)
    queue.release(one, a)
    queue.release(two, b)
    # each next turn to the replica holding its conversation, though both are as free
    for turn, home in ((conversation("hi", "more"), one), (conversation("hi", "more", "again"), one)):
        ask = Ask(turn)
        slot = await queue.acquire(ask=ask)
        assert slot.instance_id == home.instance_id
        assert ask.held >= len(conversation("hi").blocks) * BLOCK
        queue.release(slot, ask)
    r = queue.routing
    assert (r.hits, dict(r.misses)) == (2, {"cold": 2})
    assert r.saved > 0


@run
async def test_a_request_waits_for_the_busy_replica_that_holds_its_prompt_when_that_saves_time() -> None:
    """The measured case: the third of three sends of one long prompt arrives while its replica
    still finishes the second; the other replica is free but would prefill it all again."""
    queue, clock = replicas()
    prompt = conversation("hi")
    first = Ask(prompt)
    home = await queue.acquire(ask=first)
    await clock.advance(40)  # a cold prefill: 40 s
    queue.release(home, first)
    second = Ask(prompt)
    assert (await queue.acquire(ask=second)).instance_id == home.instance_id
    third = Ask(prompt)
    waiting = asyncio.create_task(queue.acquire(ask=third))
    await settle()
    assert not waiting.done()
    assert queue.waiting == 1
    await clock.advance(0.05)
    queue.release(home, second)  # a few milliseconds later its home is free
    slot = await waiting
    assert slot.instance_id == home.instance_id
    queue.release(slot, third)
    assert (queue.routing.hits, sum(queue.routing.misses.values())) == (2, 1)


@run
async def test_it_waits_no_longer_than_the_prefill_it_would_save_counted_as_a_miss_costs() -> None:
    queue, clock = replicas()
    prompt = conversation("hi")
    first = Ask(prompt)
    home = await queue.acquire(ask=first)
    queue.release(home, first)
    busy = Ask(prompt)
    await queue.acquire(ask=busy)  # and it goes on and on
    waiting = asyncio.create_task(queue.acquire(ask=Ask(prompt)))
    # seconds of prefill it saves, counted STICK times (a miss elsewhere puts out another prompt)
    saves = STICK * queue.routing.per_char * (len(prompt.blocks) * BLOCK)
    await clock.advance(saves * 0.9)
    assert not waiting.done()
    await clock.advance(saves * 0.2)  # waiting is no longer worth it: the free replica takes it
    slot = await waiting
    assert slot.instance_id != home.instance_id
    assert queue.routing.misses["busy"] == 1


@run
async def test_it_does_not_wait_when_the_replica_holding_its_prompt_has_a_long_line() -> None:
    queue, _clock = replicas(queued=4)
    prompt = conversation("hi")
    first = Ask(prompt)
    home = await queue.acquire(ask=first)
    queue.release(home, first)
    cold = STICK * queue.routing.per_char * prompt.chars  # a cold prefill, as a miss is costed
    queue.routing.after = cold / 2.5  # how long each request runs after its prefill
    for _ in range(3):  # its home takes them (the wait there costs less than a miss)...
        assert (await queue.acquire(ask=Ask(prompt))).instance_id == home.instance_id
    # ...until the wait behind them costs more than a miss on the free one
    late = Ask(prompt)
    slot = await queue.acquire(ask=late)
    assert slot.instance_id != home.instance_id
    assert late.held == 0


@run
async def test_new_conversations_spread_over_the_caches() -> None:
    queue, _clock = replicas()
    homes = []
    for topic in ("pirate", "clerk", "poet", "judge"):
        ask = Ask(conversation("hi", system=f"You are a {topic}. " * 300))
        slot = await queue.acquire(ask=ask)
        queue.release(slot, ask)
        homes.append(slot.instance_id)
    assert sorted(homes) == [1, 1, 2, 2]  # each to the replica that holds less


@run
async def test_a_session_pins_its_conversation_and_misses_when_its_replica_is_gone() -> None:
    queue, _clock = replicas()
    opening = Ask(Prompt.of("a" * 3000, session="s1"))
    first = await queue.acquire(ask=opening)
    queue.release(first, opening)
    other = await queue.acquire()  # an unrelated request on the session's replica
    assert other.instance_id == first.instance_id
    # the session's replica is busy: its next turn, whatever its words, waits for it
    follow = Ask(Prompt.of("b" * 5000, session="s1"))
    waiting = asyncio.create_task(queue.acquire(ask=follow))
    await settle()
    assert not waiting.done()
    queue.release(other)
    assert (await waiting).instance_id == first.instance_id
    queue.release(first, follow)
    queue.drop_slot(first.instance_id)  # its replica goes away
    moved = Ask(Prompt.of("c" * 6000, session="s1"))
    slot = await queue.acquire(ask=moved)
    assert slot.instance_id != first.instance_id
    assert queue.routing.misses["gone"] == 1


@run
async def test_what_the_engine_reports_corrects_the_guesses() -> None:
    queue, _clock = replicas()
    r = queue.routing
    prompt = conversation("hi")
    cold = Ask(prompt)
    slot = await queue.acquire(ask=cold)
    queue.release(slot, cold)
    tokens = prompt.chars // 3
    r.learn(cold, tokens, 0, prefill=tokens * 0.002)  # 3 characters a token, 2 ms a token
    assert r.chars_per_token == pytest.approx(4.0 + 0.2 * (3.0 - 4.0), rel=1e-2)
    assert r.per_char < 0.01  # learned toward the engine's rate
    # the engine says it had nothing cached where routing thought it had it all: evicted
    again = Ask(prompt)
    slot = await queue.acquire(ask=again)
    assert again.hit
    queue.release(slot, again)
    r.learn(again, tokens, 0, prefill=tokens * 0.002)
    assert (r.hits, r.misses["evicted"]) == (0, 1)
    assert queue.routing.caches[slot.instance_id].held(prompt) == 0  # forgotten there
    # an engine that kept it says so, and nothing changes
    for ask in (Ask(prompt), Ask(prompt)):  # cold again, then held
        slot = await queue.acquire(ask=ask)
        queue.release(slot, ask)
    r.learn(ask, tokens, tokens - 10, prefill=0.02)
    assert r.hits == 1
    assert queue.routing.caches[slot.instance_id].held(prompt) == len(prompt.blocks)


@run
async def test_least_loaded_routing_sends_to_the_fewest_in_flight() -> None:
    queue, _clock = replicas("least-loaded", queued=1)
    prompt = conversation("hi")
    first = Ask(prompt)
    home = await queue.acquire(ask=first)
    queue.release(home, first)
    busy = Ask(prompt)
    await queue.acquire(ask=busy)
    # its home has room (in the engine's own queue) and holds it, yet the idle one takes it
    more = "tell me more. " * 20  # its own blocks beyond the first turn's
    longer = Ask(conversation("hi", more))
    slot = await queue.acquire(ask=longer)
    assert slot.instance_id != home.instance_id
    # as free as each other: the one that holds more of it
    queue.release(home, busy)
    queue.release(slot, longer)
    again = await queue.acquire(ask=Ask(conversation("hi", more, "again")))
    assert again.instance_id == slot.instance_id


@run
async def test_a_request_held_for_its_replica_lets_the_next_take_a_free_one() -> None:
    queue, _clock = replicas()
    prompt = conversation("hi")
    first = Ask(prompt)
    home = await queue.acquire(ask=first)
    queue.release(home, first)
    await queue.acquire(ask=Ask(prompt))  # its replica is busy now
    held = asyncio.create_task(queue.acquire(ask=Ask(prompt)))
    await settle()
    assert not held.done()
    other = Ask(conversation("hi", system="You are a pirate. " * 300))
    taking = asyncio.create_task(queue.acquire(ask=other))
    await settle()
    assert taking.done()  # at once, on the free replica
    slot = taking.result()
    assert slot.instance_id != home.instance_id
    held.cancel()


@run
async def test_a_long_wait_in_a_full_queue_does_not_count_against_waiting_for_its_replica() -> None:
    queue, clock = replicas()
    prompt = conversation("hi")
    first = Ask(prompt)
    home = await queue.acquire(ask=first)
    queue.release(home, first)
    held = [Ask(prompt), Ask(conversation("hi", system="You are a pirate. " * 300))]
    slots = [await queue.acquire(ask=a) for a in held]  # both replicas busy
    assert slots[0].instance_id == home.instance_id
    waiting = asyncio.create_task(queue.acquire(ask=Ask(prompt)))
    await clock.advance(100)  # a full queue: it waits, whatever the routing
    other = slots[1]
    queue.release(other, held[1])  # the other replica frees first
    await settle()
    assert not waiting.done()  # its own replica will be free soon, and saves the prefill
    queue.release(home, held[0])
    assert (await waiting).instance_id == home.instance_id


@run
async def test_prompts_of_one_opening_go_home_after_routing_forgot_them() -> None:
    """A replica's cache took other prompts in place of a system prompt's conversation: the next
    conversation with that system prompt goes back to the replica the last one went to, not to
    the emptier one, so the other replica's cache keeps its own prompts."""
    queue, _clock = replicas()
    r = queue.routing
    first = Ask(conversation("hi"))
    home = await queue.acquire(ask=first)
    queue.release(home, first)
    most = len(first.prompt.blocks) + 1 if first.prompt else 1  # room for one such prompt
    r.cache(home.instance_id).add(Prompt.of("You are a pirate. " * 300), most)  # it took another's place
    assert r.cache(home.instance_id).held(conversation("and now?")) == 0
    again = Ask(conversation("and now?"))
    slot = await queue.acquire(ask=again)
    assert slot.instance_id == home.instance_id
    assert (again.hit, r.misses["cold"]) == (False, 2)  # counted as what routing knew: cold
