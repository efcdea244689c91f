"""Fewer model swaps (runtime/turns.py), on fakes: under the one-chat-model rule, a load on
demand waits for the loaded model's turn to end, the waiting loads go oldest first, none is
passed over longer than the bound, and a model unloaded while requests wait for it comes back
for them."""

from __future__ import annotations

from pathlib import Path

from runtime.fakes import Harness, harness, run


def loaded(h: Harness) -> list[str]:
    return sorted(h.runtime.running)


@run
async def test_a_load_waits_for_the_loaded_models_turn_then_the_oldest_goes_first(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        for name in ("a", "b", "c"):
            h.add(name, autoload=True)
        queue_a, slot_a = await h.served(h.request("a"))
        b = h.request("b")
        await h.advance(1)
        c = h.request("c")
        await h.advance(5)
        assert loaded(h) == ["a"]  # a still answers: b and c wait for its turn to end
        assert not b.done()
        assert not c.done()
        queue_a.release(slot_a)
        queue_b, slot_b = await h.served(b)  # b waited longer than c: b goes first
        assert loaded(h) == ["b"]
        assert not c.done()
        queue_b.release(slot_b)
        await h.served(c)
        assert loaded(h) == ["c"]
        assert h.runtime.turns.swaps == 2


@run
async def test_no_request_is_passed_over_longer_than_the_bound(tmp_path: Path) -> None:
    async with harness(tmp_path, swap_bound=20) as h:
        for name in ("a", "b"):
            h.add(name, autoload=True)
        first = await h.served(h.request("a"))
        b = h.request("b")
        again = h.request("a")  # a's turn goes on while its requests keep coming
        await h.advance(10)
        first[0].release(first[1])
        await h.advance(0.5)
        assert again.done()
        more = h.request("a")
        await h.advance(7)
        assert not b.done()
        await h.advance(3)  # b passed over 20 s: a gives way, busy as it is
        queue_a, slot_a = again.result()
        assert queue_a.slots[slot_a.instance_id].draining  # what it runs finishes
        queue_a.release(slot_a)
        queue_b, slot_b = await h.served(b)
        assert loaded(h) == ["b"]
        assert not more.done()  # a's request waits on, for a's next turn, instead of failing
        queue_b.release(slot_b)
        await h.served(more)
        assert loaded(h) == ["a"]
        assert h.runtime.turns.swaps == 2


@run
async def test_with_no_bound_each_load_goes_at_once(tmp_path: Path) -> None:
    async with harness(tmp_path, swap_bound=0) as h:
        for name in ("a", "b"):
            h.add(name, autoload=True)
        queue_a, slot_a = await h.served(h.request("a"))
        b = h.request("b")
        await h.advance(0.5)
        assert queue_a.slots[slot_a.instance_id].draining  # a answers still, yet b's load began
        queue_a.release(slot_a)
        await h.served(b)
        assert loaded(h) == ["b"]


@run
async def test_no_load_unloads_a_model_whose_own_load_is_under_way(tmp_path: Path) -> None:
    async with harness(tmp_path, swap_bound=0) as h:
        for name in ("a", "b"):
            h.add(name, autoload=True)
            h.script(name, ready_after=3.0)  # an engine takes 3 s to start
        a = h.request("a")
        await h.advance(1)  # a's engine starts
        b = h.request("b")  # first come first served, yet not over a's start
        queue_a, slot_a = await h.served(a)  # a's request is answered, not cut off
        assert loaded(h) == ["a"]
        queue_a.release(slot_a)
        await h.served(b)  # then b's load
        assert loaded(h) == ["b"]
