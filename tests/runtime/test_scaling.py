"""Autoscaling (runtime/scaling.py), on fakes: a deployment's replicas grow while requests wait,
shrink once fewer could serve it, stay between their least and most and within what fits, and
one scaled to zero holds its first request until an instance serves it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from modelyard.catalog.records import Autoscale, Deployment
from modelyard.errors import InvalidSettings
from modelyard.runtime.executor import Node
from runtime.fakes import Harness, harness, run

GiB = 1 << 30


def running(h: Harness, name: str = "m") -> int:
    return h.state(name).count("running")


@run
async def test_replicas_follow_the_waiting_requests_between_least_and_most(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        dep = Deployment(model="m", autoscale=Autoscale(least=1, most=3, wait=2, idle=60))
        await h.runtime.deploy(dep)
        assert running(h) == 1
        held = [await h.acquire("m")]
        waiting = [h.request("m"), h.request("m"), h.request("m")]
        await h.advance(1)
        assert running(h) == 1  # they have not waited 2 s yet
        held.append(await h.served(waiting[0]))  # a second replica took the first
        held.append(await h.served(waiting[1]))  # and a third the next
        assert running(h) == 3
        await h.advance(10)
        assert running(h) == 3  # at its most: the last one waits for a slot
        assert not waiting[2].done()
        for queue, slot in held:
            queue.release(slot)
        queue, slot = await h.served(waiting[2])
        queue.release(slot)
        await h.advance(59)
        assert running(h) == 3
        await h.advance(2)  # two could have served it all for 60 s: one goes
        assert running(h) == 2
        await h.advance(61)
        assert running(h) == 1
        await h.advance(120)
        assert running(h) == 1  # its least
        assert h.runtime.deployment("m").replicas == 1  # type: ignore[union-attr]


@run
async def test_scaled_to_zero_it_holds_the_first_request_until_an_instance_serves(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        await h.runtime.deploy(Deployment(model="m", autoscale=Autoscale(least=0, most=2, idle=30)))
        assert running(h) == 1
        await h.advance(31)
        assert h.state("m") == []  # no instance now; the deployment stays
        assert h.runtime.deployment("m").replicas == 0  # type: ignore[union-attr]
        request = h.request("m")
        queue, slot = await h.served(request)  # held, then served by a new instance
        assert running(h) == 1
        queue.release(slot)


@run
async def test_it_grows_only_as_far_as_the_memory_allows(tmp_path: Path) -> None:
    machine = Node("here", "127.0.0.1", 8 * GiB, 8 * GiB, ())
    async with harness(tmp_path, nodes=[machine]) as h:
        h.backend.need = 3 * GiB  # two fit
        h.add("m")
        await h.runtime.deploy(Deployment(model="m", autoscale=Autoscale(least=1, most=4, wait=1)))
        held = [await h.acquire("m")]
        waiting = [h.request("m"), h.request("m")]
        held.append(await h.served(waiting[0]))
        await h.advance(10)
        assert running(h) == 2  # a third does not fit: asked for again later, the request waits
        assert not waiting[1].done()
        for queue, slot in held:
            queue.release(slot)
        await h.served(waiting[1])


@run
async def test_a_range_that_cannot_be_is_refused(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        with pytest.raises(InvalidSettings, match="autoscaling from 3 to 2 replicas"):
            await h.runtime.deploy(Deployment(model="m", autoscale=Autoscale(least=3, most=2)))
        with pytest.raises(InvalidSettings):
            await h.runtime.deploy(replace(Deployment(model="m"), autoscale=Autoscale(least=0, most=0)))
