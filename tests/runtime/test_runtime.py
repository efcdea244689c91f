"""The runtime's rules on fakes (FakeExecutor, FakeBackend, FakeClock): the queue, draining and
the switch timeout, restart backoff and its reset, idle unload, memory pressure, failed starts
with requests waiting, crashes mid-queue. No engine runs; time moves when a test says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modelyard.catalog.records import Deployment
from modelyard.errors import (
    EngineError,
    InvalidSettings,
    LoadRefused,
    ModelNotLoaded,
    QueueFull,
    QueueTimeout,
)
from modelyard.runtime.queue import Ask, ClientGone
from modelyard.runtime.routing import Prompt
from modelyard.runtime.runtime import Runtime
from runtime.fake_clock import settle
from runtime.fakes import harness, run, stays, until

GiB = 1 << 30


@run
async def test_requests_go_to_the_least_busy_instance_and_overflow_is_refused_at_once(tmp_path: Path) -> None:
    async with harness(tmp_path, queue_size=1) as h:
        h.add("m")
        await h.runtime.load("m", replicas=2)
        queue, first = await h.acquire("m")
        _, second = await h.acquire("m")
        assert first.instance_id != second.instance_id  # the other instance had fewer in flight
        waiting = h.request("m")
        await until(lambda: queue.waiting == 1)
        with pytest.raises(QueueFull, match="1 requests are already waiting for 'm'"):
            await h.acquire("m")  # refused at once, without waiting
        assert queue.waiting == 1
        queue.release(first)
        _, third = await waiting
        assert third.instance_id == first.instance_id


@run
async def test_a_conversation_goes_back_to_the_replica_that_caches_it(tmp_path: Path) -> None:
    """The runtime hands a request's route to its model's queue (routing: test_routing.py)."""
    async with harness(tmp_path) as h:
        h.add("m")
        await h.runtime.load("m", replicas=2)
        model = h.library.get("m")
        assert h.runtime.replicated("m")
        opening = "You answer in rhymes. " * 100

        async def turn(text: str) -> int:
            ask = Ask(Prompt.of(text))
            queue, slot = await h.runtime.acquire(model, None, stays, ask=ask)
            queue.release(slot, ask)
            return slot.instance_id

        first, other = await turn(opening + "hi"), await turn("Another opening. " * 100)
        assert first != other  # new prompts: spread over the replicas
        assert await turn(opening + "hi, and more") == first
        routing = h.runtime.queues["m"].routing
        assert (routing.hits, routing.misses["cold"]) == (1, 2)


@run
async def test_a_request_waits_no_longer_than_the_queue_allows(tmp_path: Path) -> None:
    async with harness(tmp_path, queue_timeout=30) as h:
        h.add("m")
        await h.runtime.load("m")
        queue, _held = await h.acquire("m")
        waiting = h.request("m")
        await until(lambda: queue.waiting == 1)
        await h.advance(29)
        assert not waiting.done()
        await h.advance(2)
        with pytest.raises(QueueTimeout, match="no instance of 'm' was free within 30 s"):
            await waiting
        assert queue.waiting == 0


@run
async def test_a_client_that_leaves_leaves_the_queue(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        model = h.add("m")
        await h.runtime.load("m")
        queue, _held = await h.acquire("m")
        gone = False

        async def disconnected() -> bool:
            return gone

        waiting = asyncio.ensure_future(h.runtime.acquire(model, None, disconnected))
        await until(lambda: queue.waiting == 1)
        gone = True
        queue.notify()
        with pytest.raises(ClientGone):
            await waiting
        assert queue.waiting == 0


@run
async def test_unload_waits_for_requests_in_flight(tmp_path: Path) -> None:
    async with harness(tmp_path, switch_timeout=60) as h:
        h.add("m")
        await h.runtime.load("m")
        (engine,) = h.engines("m")
        queue, held = await h.acquire("m")
        unloading = asyncio.ensure_future(h.runtime.unload("m"))
        await h.advance(30)
        assert not unloading.done()
        assert engine.returncode() is None  # the request in flight is not cut off
        queue.release(held)
        await unloading
        assert engine.returncode() is not None
        assert not h.runtime.is_loaded("m")


@run
async def test_unload_of_a_busy_model_is_refused_after_the_switch_timeout_unless_forced(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path, switch_timeout=60) as h:
        h.add("m")
        await h.runtime.load("m")
        queue, held = await h.acquire("m")
        unloading = asyncio.ensure_future(h.runtime.unload("m"))
        await h.advance(61)
        with pytest.raises(LoadRefused, match="'m' is still answering 1 request"):
            await unloading
        assert h.runtime.is_loaded("m")
        queue.release(held)
        _, again = await h.acquire("m")  # it serves again
        queue.release(again)
        _, held = await h.acquire("m")
        await h.runtime.unload("m", force=True)  # at once
        assert not h.runtime.is_loaded("m")


@run
async def test_a_busy_model_is_not_cut_off_by_a_switch(tmp_path: Path) -> None:
    async with harness(tmp_path, switch_timeout=60) as h:
        h.add("a")
        h.add("b")
        await h.runtime.load("a")
        (old,) = h.engines("a")
        queue, held = await h.acquire("a")
        switching = asyncio.ensure_future(h.runtime.load("b"))
        await h.advance(59)
        assert not switching.done()
        await h.advance(2)
        with pytest.raises(LoadRefused, match="'a' is still answering 1 request"):
            await switching
        assert old.returncode() is None
        assert h.engines("b") == []
        assert h.runtime.is_loaded("a")
        assert not h.runtime.is_loaded("b")
        queue.release(held)


@run
async def test_a_switch_stops_the_old_model_only_once_the_new_one_serves(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("a")
        h.add("b")
        h.script("b", ready_after=20)
        await h.runtime.load("a")
        (old,) = h.engines("a")
        switching = asyncio.ensure_future(h.runtime.load("b"))
        await until(lambda: len(h.engines("b")) == 1)
        await h.advance(10)
        assert old.returncode() is None  # still there while the new one starts
        await h.advance(10.2)  # ready at 20 s, seen by the next health check (every 0.1 s)
        await switching
        assert old.returncode() is not None
        assert h.runtime.is_loaded("b")
        assert not h.runtime.is_loaded("a")


@pytest.mark.parametrize("force", [False, True])
@run
async def test_a_failed_load_leaves_the_old_model_serving(tmp_path: Path, force: bool) -> None:
    """Forced too: where the new model fits beside the old one, the old one is not stopped first."""
    async with harness(tmp_path) as h:
        h.add("a")
        h.add("b")
        h.script("b", fail_start=True)
        await h.runtime.load("a")
        (old,) = h.engines("a")
        with pytest.raises(EngineError, match="the engine of 'b' exited with status 1 while starting"):
            await h.runtime.load("b", force=force)
        assert old.returncode() is None
        assert h.engines("a") == [old]
        assert h.runtime.is_loaded("a")
        assert not h.runtime.is_loaded("b")
        queue, slot = await h.acquire("a")  # it still answers
        queue.release(slot)
        assert {d.model for d in h.library.store.deployments()} == {"a"}


@run
async def test_a_load_that_needs_the_old_models_memory_brings_it_back_when_it_fails(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.backend.need = 40 * GiB  # the node has 32 GiB free: only with a's 10 GiB back
        h.add("a")
        h.add("b")
        h.script("a", memory=10 * GiB)
        h.script("b", fail_start=True)
        await h.runtime.load("a", force=True)
        (old,) = h.engines("a")
        with pytest.raises(EngineError):
            await h.runtime.load("b")
        assert old.returncode() is not None  # it had to go first, to make room
        await until(lambda: h.state("a") == ["running"])
        assert len(h.engines("a")) == 1


@run
async def test_restart_backoff_doubles_and_starts_over_after_healthy_service(tmp_path: Path) -> None:
    async with harness(tmp_path, restart_backoff=10, restart_backoff_max=300, restart_reset=600) as h:
        h.add("m")
        await h.runtime.load("m")

        async def crash_and_time_the_restart(expected: float) -> None:
            (engine,) = h.engines("m")
            await engine.crash()
            await until(lambda: h.state("m") == ["restarting"])
            await h.advance(expected - 0.5)
            assert h.engines("m") == []
            await h.advance(1)
            await until(lambda: h.state("m") == ["running"])

        await crash_and_time_the_restart(10)
        await crash_and_time_the_restart(20)
        await crash_and_time_the_restart(40)
        await h.advance(600)  # it served healthily for a while: the next crash is not a loop
        await crash_and_time_the_restart(10)
        (inst,) = h.runtime.instances()
        assert (inst.starts, inst.restarts) == (5, 4)
        notes = [e.get("note") for e in inst.history if e["state"] == "restarting"]
        delays = [note.rpartition("; ")[2] for note in notes]
        assert delays == ["restart in 10 s", "restart in 20 s", "restart in 40 s", "restart in 10 s"]


@run
async def test_a_start_that_fails_answers_the_requests_waiting(tmp_path: Path) -> None:
    async with harness(tmp_path, restart_backoff=10) as h:
        h.add("m")
        await h.runtime.load("m")
        (engine,) = h.engines("m")
        queue, held = await h.acquire("m")
        waiting = h.request("m")
        await until(lambda: queue.waiting == 1)
        script = h.script("m", fail_start=True)  # the model's file went away, say
        await engine.crash()
        await until(lambda: not queue.slots)  # out of the rotation once its exit is heard
        queue.release(held)  # the gateway's request failed with the engine
        await asyncio.sleep(0.01)
        assert not waiting.done()  # a crash: it waits for the restart
        await h.advance(10)
        with pytest.raises(EngineError, match="exited with status 1 while starting"):
            await waiting
        with pytest.raises(EngineError):  # newcomers hear it at once, until the next try
            await h.acquire("m")
        script.fail_start = False
        await h.advance(20)
        await until(lambda: h.state("m") == ["running"])
        _, slot = await h.acquire("m")
        assert slot.instance_id == held.instance_id


@run
async def test_a_failed_load_on_demand_answers_its_waiters(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m", autoload=True)
        h.script("m", fail_start=True)
        with pytest.raises(EngineError, match="exited with status 1 while starting"):
            await h.acquire("m")
        await until(lambda: not h.runtime.is_loaded("m"))  # and the failed load is undone


@run
async def test_a_request_waiting_through_a_crash_gets_the_restarted_instance(tmp_path: Path) -> None:
    async with harness(tmp_path, restart_backoff=5) as h:
        h.add("m")
        await h.runtime.load("m")
        (engine,) = h.engines("m")
        queue, held = await h.acquire("m")
        waiting = h.request("m")
        await until(lambda: queue.waiting == 1)
        await engine.crash()
        await settle()
        assert queue.slots == {}  # out of the rotation the moment it exited
        queue.release(held)
        await h.advance(5)
        _, slot = await waiting
        (restarted,) = h.engines("m")
        assert restarted is not engine
        assert slot.url == restarted.url


@run
async def test_an_instance_that_does_not_answer_leaves_the_rotation_and_restarts(tmp_path: Path) -> None:
    async with harness(tmp_path, restart_backoff=5) as h:
        h.add("m")
        await h.runtime.load("m", replicas=2)
        queue, slot = await h.acquire("m")
        queue.release(slot)
        dead = next(e for e in h.engines("m") if e.url == slot.url)
        await dead.crash(report=False)  # it stopped answering; nobody has heard it exit
        h.runtime.unreachable("m", slot)  # the gateway could not connect
        assert slot.instance_id not in queue.slots
        for _ in range(2):  # every request now goes to the other one
            q, other = await h.acquire("m")
            assert other.instance_id != slot.instance_id
            q.release(other)
        await h.advance(1)  # its health checks fail: it is stopped, and restarts
        await until(lambda: dead.returncode() is not None)
        await h.advance(5)
        await until(lambda: len(queue.slots) == 2)


@run
async def test_idle_models_unload(tmp_path: Path) -> None:
    async with harness(tmp_path, idle_unload=60) as h:
        h.add("m")
        await h.runtime.load("m")
        queue, slot = await h.acquire("m")
        await h.advance(120)
        assert h.runtime.is_loaded("m")  # busy is not idle
        queue.release(slot)
        await h.advance(59)
        assert h.runtime.is_loaded("m")
        await h.advance(2)
        await until(lambda: not h.runtime.is_loaded("m"))
        assert h.engines() == []


@run
async def test_memory_pressure_unloads_the_least_recently_used_idle_model(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("chat")
        h.add("embed", "embedding")
        await h.runtime.load("chat")
        await h.runtime.load("embed")
        for name in ("chat", "embed"):
            queue, slot = await h.acquire(name)
            queue.release(slot)
            await h.advance(5)
        queue, held = await h.acquire("chat")  # now the most recent, and busy
        assert await h.runtime.watching.relieve_pressure() == (
            "unloaded 'embed', the least recently used idle model, to relieve memory pressure; "
            "its deployment stays, and it loads again when memory frees"
        )
        assert await h.runtime.watching.relieve_pressure() is None  # the other is busy
        assert h.runtime.is_loaded("chat")
        queue.release(held)
        # the wish outlives its instances: recorded, visible, and back after a while
        (embed,) = [d for d in h.library.store.deployments() if d.model == "embed"]
        assert h.runtime.wish_state(embed) == ("evicted", "unloaded to relieve memory pressure", 60.0)
        assert h.engines("embed") == []
        await h.advance(59)
        assert not h.runtime.is_loaded("embed")
        await h.advance(2)
        await until(lambda: h.state("embed") == ["running"])
        assert h.runtime.wish_state(embed)[0] == "running"


@run
async def test_a_deployment_loaded_on_demand_is_forgotten_under_pressure(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m", autoload=True)
        await h.runtime.load("m", jit=True)
        assert await h.runtime.watching.relieve_pressure() is not None
        assert h.library.store.deployments() == []  # a request loads it again


@run
async def test_a_deployment_whose_start_fails_at_boot_stays_and_comes_back(tmp_path: Path) -> None:
    async with harness(tmp_path, restart_backoff=10, restart_backoff_max=300) as h:
        h.add("m")
        await h.runtime.load("m", replicas=1)
        await h.runtime.close()  # the server stops; at its next start the engine is killed at once
        h.script("m", fail_start=True)
        again = Runtime(
            h.runtime.settings,
            h.library,
            executor=h.executor,
            backends=h.runtime.backends,
            clock=h.clock,
            offload=h.runtime.offload,
        )
        h.runtime = again
        await again.start()
        await until(lambda: "m" in again.held_back)
        (dep,) = h.library.store.deployments()
        state, reason, retry_in = again.wish_state(dep)
        assert (state, retry_in) == ("retrying", 10.0)
        assert reason == "the engine of 'm' exited with status 1 while starting"
        await h.advance(10)  # the second try fails too: twice as long to the third
        await until(lambda: again.held_back["m"].attempts == 2)
        assert again.wish_state(dep)[2] == 20.0
        h.script("m")  # whatever killed it is gone
        await h.advance(20)
        await until(lambda: h.state("m") == ["running"])
        assert again.wish_state(dep) == ("running", None, None)
        assert "m" not in again.held_back


@run
async def test_an_unload_forgets_a_held_back_deployment(tmp_path: Path) -> None:
    async with harness(tmp_path, restart_backoff=10) as h:
        h.add("m")
        h.add("n", "embedding")
        await h.runtime.load("m")
        await h.runtime.load("n", replicas=1)
        h.script("m", fail_start=True)
        (dep,) = [d for d in h.library.store.deployments() if d.model == "m"]
        await h.runtime.watching.relieve_pressure()  # m: the least recently used
        assert h.runtime.wish_state(dep)[0] == "evicted"
        await h.runtime.unload("m")
        assert [d.model for d in h.library.store.deployments()] == ["n"]
        await h.advance(120)
        assert h.engines("m") == []  # no try after the unload
        assert "m" not in h.runtime.held_back
        # restart off: a failed start is kept, not retried
        await h.runtime.unload("n")
        h.script("n", fail_start=True)
        kept = h.library.store.put_deployment(Deployment(model="n", restart=False))
        await h.runtime._restore(kept)
        assert h.runtime.wish_state(kept)[:1] == ("failed",)
        assert h.runtime.wish_state(kept)[2] is None
        assert [d.model for d in h.library.store.deployments()] == ["n"]


@run
async def test_an_engine_that_never_gets_ready_is_stopped_at_the_health_timeout(tmp_path: Path) -> None:
    async with harness(tmp_path, health_timeout=30) as h:
        h.add("m")
        h.script("m", ready_after=None)
        loading = asyncio.ensure_future(h.runtime.load("m"))
        await until(lambda: len(h.engines("m")) == 1)
        (engine,) = h.engines("m")
        await h.advance(29)
        assert not loading.done()
        await h.advance(2)
        with pytest.raises(EngineError, match="was not ready after 30 s"):
            await loading
        assert engine.returncode() is not None
        assert h.runtime.instances() == []


@run
async def test_scaling_down_stops_the_newest_and_waiters_of_an_unloaded_model_hear_it(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        dep = await h.runtime.load("m", replicas=3)
        assert dep.replicas == 3
        ids = sorted(i.id for i in h.runtime.instances())
        await h.runtime.load("m", replicas=1)
        assert [i.id for i in h.runtime.instances()] == ids[:1]
        assert len(h.engines("m")) == 1
        queue, _held = await h.acquire("m")
        waiting = h.request("m")
        await until(lambda: queue.waiting == 1)
        await h.runtime.unload("m", force=True)
        with pytest.raises(ModelNotLoaded):
            await waiting


@run
async def test_a_model_unloaded_under_its_waiters_loads_again_on_demand(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m", autoload=True)
        queue, held = await h.acquire("m")  # loaded on demand
        waiting = h.request("m")
        await until(lambda: queue.waiting == 1)
        await h.runtime.unload("m", force=True)
        with pytest.raises(ModelNotLoaded):
            await waiting
        queue, again = await h.acquire("m")  # the next request loads it again
        assert again.instance_id != held.instance_id
        queue.release(again)


@run
async def test_an_argument_given_as_key_equals_value_reaches_the_engine_as_two(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        dep = Deployment(model="m", args=["--mode=fast", "--fast", "-1"])
        await h.runtime.deploy(dep)
        (engine,) = h.engines("m")
        assert engine.launch.spec.argv[-4:] == ["--mode", "fast", "--fast", "-1"]
        with pytest.raises(InvalidSettings, match="fake-engine has no flag --slow"):
            await h.runtime.deploy(Deployment(model="m", args=["--slow=1"]))


@run
async def test_an_instance_that_restarts_shows_no_address(tmp_path: Path) -> None:
    async with harness(tmp_path, restart_backoff=10) as h:
        h.add("m")
        await h.runtime.load("m")
        (inst,) = h.runtime.instances()
        assert inst.url is not None
        (engine,) = h.engines("m")
        await engine.crash()
        await until(lambda: h.state("m") == ["restarting"])
        (inst,) = h.runtime.instances()
        assert inst.url is None  # the dead engine's address is not shown while it restarts
        await h.advance(11)
        await until(lambda: h.state("m") == ["running"])
        (inst,) = h.runtime.instances()
        assert inst.url is not None
