"""The bounded queue: overflow gets 429 + Retry-After at once, a client that leaves the queue is
gone from it, requests spread over replicas by fewest in flight, and conversations go back to
the replica that caches them. An instance of llama-server
takes its slot's request and one more, which waits in its own queue (so that the slot starts it
the moment it frees); llama-cpp-python's server takes one: ``full()`` takes what it takes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from conftest import RunningServer, serve
from runtime.conftest import add, generating, load
from waiting import eventually

pytestmark = pytest.mark.engine


LONG = {"prompt": "One, two, three,", "max_tokens": 400, "stream": True, "temperature": 0}


@pytest.fixture
def small_queue(tmp_path: Path, gemma: Path) -> RunningServer:
    with serve(tmp_path / "home", queue_size=1) as server:
        add(server, gemma, name="gemma3")
        server.http.put("/api/models/gemma3/settings", json={"options": {"n_ctx": 1024, "threads": 2}})
        load(server, "gemma3")
        yield server  # type: ignore[misc]


@asynccontextmanager
async def full(
    http: httpx.AsyncClient, server: RunningServer, body: dict[str, object]
) -> AsyncIterator[None]:
    """The instance's slot generates (and its own queue holds what it takes more), while inside."""
    queue = server.runtime.queues["gemma3"]
    (slot,) = queue.slots.values()
    backend = server.runtime.running["gemma3"].setup.backend.name
    assert slot.capacity == (2 if backend == "llama.cpp" else 1), backend
    async with generating(http, body):
        held = [
            asyncio.create_task(http.post("/v1/completions", json=body)) for _ in range(slot.capacity - 1)
        ]
        while queue.in_flight < slot.capacity:
            await asyncio.sleep(0.02)
        try:
            yield
        finally:
            for task in held:
                task.cancel()  # its client goes: the engine drops it
            await asyncio.gather(*held, return_exceptions=True)


def test_overflow_gets_429_with_retry_after(small_queue: RunningServer) -> None:
    server = small_queue
    queue = server.runtime.queues["gemma3"]

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            body = {"model": "gemma3", **LONG}
            async with full(http, server, body):  # the only slot is taken, and the engine's queue
                second = asyncio.create_task(
                    http.post("/v1/completions", json={**body, "stream": False, "max_tokens": 4})
                )
                while queue.waiting < 1:
                    await asyncio.sleep(0.02)
                third = await http.post("/v1/completions", json=body)
                # refused at once: the first still generates, the second still waits
                (slot,) = queue.slots.values()
                assert (queue.in_flight, queue.waiting) == (slot.capacity, 1)
                assert third.status_code == 429
                assert third.headers["Retry-After"] == "5"
                error = third.json()["error"]
                assert error["code"] == "queue_full"
                assert "1 requests are already waiting for 'gemma3'" in error["message"]
            # the first stream is closed: the waiting request gets its turn
            assert (await second).status_code == 200

    asyncio.run(scenario())
    assert queue.waiting == 0
    assert queue.in_flight == 0


def test_disconnecting_client_leaves_the_queue(small_queue: RunningServer) -> None:
    server = small_queue
    queue = server.runtime.queues["gemma3"]

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            body = {"model": "gemma3", **LONG}
            async with full(http, server, body):
                waiter = asyncio.create_task(http.post("/v1/completions", json=body))
                while queue.waiting < 1:
                    await asyncio.sleep(0.02)
                waiter.cancel()  # the client gives up and closes its connection
                with pytest.raises(asyncio.CancelledError):
                    await waiter
                deadline = time.monotonic() + 5
                while queue.waiting and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert queue.waiting == 0
                # the queue has room again: a new request may wait instead of being refused
                again = asyncio.create_task(
                    http.post("/v1/completions", json={**body, "stream": False, "max_tokens": 2})
                )
                while queue.waiting < 1:
                    await asyncio.sleep(0.02)
            assert (await again).status_code == 200

    asyncio.run(scenario())


def test_replicas_share_the_load(server: RunningServer, gemma: Path) -> None:
    add(server, gemma, name="gemma3")
    server.http.put("/api/models/gemma3/settings", json={"options": {"n_ctx": 1024, "threads": 1}})
    dep = load(server, "gemma3", replicas=2)
    instances = dep["instances"]
    assert len(instances) == 2  # type: ignore[arg-type]
    assert len({i["url"] for i in instances}) == 2  # type: ignore[attr-defined]
    assert len({i["pid"] for i in instances}) == 2  # type: ignore[attr-defined]
    queue = server.runtime.queues["gemma3"]

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            body = {"model": "gemma3", **LONG}
            async with generating(http, body), generating(http, body):
                # one on each instance: the second went to the one with fewer in flight
                assert sorted(s.in_flight for s in queue.slots.values()) == [1, 1]

    asyncio.run(scenario())
    eventually(lambda: queue.in_flight == 0, what="no request in flight")

    # two conversations at once go to different replicas; their next turns, at once again, each
    # to the replica whose prompt cache holds it: llama-server says it computed only the new words
    # (llama-cpp-python's server reports no timings: there the gateway's metrics say it alone)
    def notes(topic: str) -> str:
        return "".join(f"{topic} note {i}: box {i} holds {i * 7 % 101} stones.\n" for i in range(30))

    async def turns(prompts: list[str]) -> list[dict[str, int]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            answers = await asyncio.gather(*(
                http.post("/v1/completions", json={"model": "gemma3", "prompt": p, "max_tokens": 1})
                for p in prompts
            ))  # fmt: skip
        assert [a.status_code for a in answers] == [200] * len(prompts)
        return [a.json().get("timings", {}) for a in answers]

    first = asyncio.run(turns([notes("apple"), notes("river")]))
    again = asyncio.run(turns([notes("apple") + "Count them:", notes("river") + "Count them:"]))
    reported = [t for t in first + again if t]
    assert len(reported) in (0, 4)
    for cold, warm in zip(first, again, strict=True) if reported else ():
        # (its last tokens may be cut otherwise once words follow: computed again)
        assert warm["cache_n"] >= cold["prompt_n"] - 8
        assert warm["prompt_n"] < 16
    metrics = server.http.get("/metrics").text
    assert 'modelyard_prefix_hits_total{model="gemma3"} 2.0' in metrics
    assert 'modelyard_prefix_misses_total{model="gemma3",reason="cold"} 2.0' in metrics
