"""Where the runtime places instances: the deployment's scheduling over the executor's nodes."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from modelyard.catalog.records import Scheduling
from modelyard.errors import InvalidSettings, NoWorker, WontFit
from modelyard.runtime.executor import Gpu, Node
from runtime.fakes import Harness, harness, run, until

GiB = 1 << 30


def nodes() -> list[Node]:
    return [
        Node(name, "127.0.0.1", 32 * GiB, 32 * GiB, (Gpu(0, "t", 24 * GiB, 24 * GiB), Gpu(1, "t", 24 * GiB, 24 * GiB)), {"zone": zone})
        for name, zone in (("a", "x"), ("b", "y"), ("c", "y"))
    ]  # fmt: skip


def where(h: Harness, model: str) -> list[tuple[str, tuple[int, ...]]]:
    return sorted((e.launch.placement.node, e.launch.placement.gpus) for e in h.engines(model))


@run
async def test_spread_binpack_and_a_selector_over_three_nodes(tmp_path: Path) -> None:
    async with harness(tmp_path, nodes=nodes()) as h:
        h.backend.need, h.backend.vram = 2 * GiB, 10 * GiB
        h.add("m")
        dep = await h.runtime.load("m", replicas=3)
        assert where(h, "m") == [("a", (0,)), ("b", (0,)), ("c", (0,))]  # spread: the default
        assert sorted(i.node or "" for i in h.runtime.instances()) == ["a", "b", "c"]
        await h.runtime.unload("m")
        dep = await h.runtime.load("m", replicas=3, scheduling=lambda s: replace(s, policy="binpack"))
        assert where(h, "m") == [("a", (0,)), ("a", (0,)), ("a", (1,))]  # 3 x 10 GiB: two fill one GPU
        assert h.runtime.store.deployment("m") == replace(dep, id=dep.id)
        assert dep.scheduling.policy == "binpack"
        await h.runtime.unload("m")
        await h.runtime.load("m", replicas=2, scheduling=lambda s: Scheduling(selector={"zone": "y"}))
        assert where(h, "m") == [("b", (0,)), ("c", (0,))]


@run
async def test_chosen_gpus_reach_the_engine_and_a_change_of_scheduling_rolls(tmp_path: Path) -> None:
    async with harness(tmp_path, nodes=nodes()) as h:
        h.backend.need, h.backend.vram = 2 * GiB, 8 * GiB
        h.add("m")
        dep = await h.runtime.load("m", scheduling=lambda s: Scheduling(gpus=["b:1"]))
        assert where(h, "m") == [("b", (1,))]
        dep = await h.runtime.edit(replace(dep, scheduling=Scheduling(gpus=["c:0"])))
        assert where(h, "m") == [("c", (0,))]  # the old instance stopped once the new one served
        with pytest.raises(InvalidSettings, match="which worker"):
            await h.runtime.edit(replace(dep, scheduling=Scheduling(gpus=["1"])))  # three nodes
        with pytest.raises(WontFit, match="the chosen GPUs' worker d is not in the cluster"):
            await h.runtime.edit(replace(dep, scheduling=Scheduling(gpus=["d:0"])))
        with pytest.raises(
            WontFit, match=re.escape("needs 8.0 GiB of VRAM on the chosen GPUs (a:2 no such GPU)")
        ):
            await h.runtime.edit(replace(dep, scheduling=Scheduling(gpus=["a:2"])))
        assert where(h, "m") == [("c", (0,))]  # a refused change leaves it serving


@run
async def test_what_fits_nowhere_is_refused_with_the_numbers(tmp_path: Path) -> None:
    async with harness(tmp_path, nodes=nodes()) as h:
        h.backend.need, h.backend.vram = 40 * GiB, 30 * GiB
        h.add("m")
        with pytest.raises(WontFit) as refused:
            await h.runtime.load("m", scheduling=lambda s: replace(s, cpu_offload=False))
        assert refused.value.message == (
            "'m' does not fit: needs 30.0 GiB of VRAM on one GPU or 40.0 GiB of RAM on the CPU; "
            "the most free: 24.0 GiB on c:1, 32.0 GiB of RAM on c"
        )
        assert h.runtime.instances() == []


@run
async def test_on_a_cluster_what_fits_nowhere_waits_for_a_worker(tmp_path: Path) -> None:
    async with harness(tmp_path, nodes=nodes(), elastic=True) as h:
        h.backend.need, h.backend.vram = 14 * GiB, 20 * GiB  # one per GPU: 6 on the three nodes
        h.add("m")
        dep = await h.runtime.load("m", replicas=8, scheduling=lambda s: replace(s, cpu_offload=False))
        assert dep.replicas == 8
        assert sorted(h.state("m")) == ["pending"] * 2 + ["running"] * 6  # what fits serves now
        waiting = [i for i in h.runtime.instances() if i.state == "pending"]
        assert {i.error for i in waiting} == {
            "'m' does not fit: needs 20.0 GiB of VRAM on one GPU or 14.0 GiB of RAM on the CPU; "
            "the most free: 4.0 GiB on c:1, 4.0 GiB of RAM on c"
        }
        assert all(i.node is None for i in waiting)
        h.executor.inventory.append(replace(nodes()[0], id="d"))  # a worker joins
        await h.advance(2)
        await until(lambda: sorted(h.state("m")) == ["running"] * 8)
        assert [n for n, _ in where(h, "m")].count("d") == 2
        await h.runtime.unload("m")
        assert h.engines("m") == []
        assert h.runtime.instances() == []


@run
async def test_a_request_for_a_model_no_worker_can_take_is_answered_at_once(tmp_path: Path) -> None:
    async with harness(tmp_path, nodes=nodes(), elastic=True) as h:
        h.add("m")
        await h.runtime.load("m", scheduling=lambda s: replace(s, selector={"zone": "z"}))
        (inst,) = h.runtime.instances()
        assert inst.state == "pending"
        why = "'m' does not fit: no node may take it; 3 nodes left out by the selector zone=z"
        assert inst.error == why
        with pytest.raises(NoWorker) as refused:  # not after the queue's time limit: now
            await h.acquire("m")
        assert refused.value.message == f"no instance of 'm' can serve: {why}"
        await h.advance(2)  # another try to place it, which fails again
        with pytest.raises(NoWorker):
            await h.acquire("m")
        h.executor.inventory.append(replace(nodes()[0], id="d", labels={"zone": "z"}))
        await h.advance(2)  # placed: requests wait for its start again
        request = h.request("m")
        for _ in range(100):  # its start and health, in fake time
            if request.done():
                break
            await h.advance(0.5)
        _, slot = request.result()
        assert where(h, "m") == [("d", ())]  # on its CPU: the model needs no GPU
        assert slot.url == h.engines("m")[0].url


@run
async def test_a_load_on_demand_is_refused_at_once_even_on_a_cluster(tmp_path: Path) -> None:
    async with harness(tmp_path, nodes=nodes(), elastic=True) as h:
        h.backend.need = 40 * GiB
        h.add("m", autoload=True)
        with pytest.raises(WontFit, match="'m' does not fit"):
            await h.acquire("m")  # a request does not wait for a worker that may never come
        assert h.runtime.instances() == []
