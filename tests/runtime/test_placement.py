"""Where the runtime places instances: the deployment's scheduling over the executor's nodes."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path

import pytest

from modelyard.catalog.records import Deployment, Scheduling
from modelyard.errors import InvalidSettings, NotFound, NoWorker, WontFit
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


@run
async def test_a_drained_worker_takes_nothing_new_and_its_instances_move_before_they_stop(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path, nodes=nodes()) as h:
        h.backend.need, h.backend.vram = 14 * GiB, 20 * GiB  # one per GPU: two per node
        h.add("m")
        await h.runtime.load("m", replicas=3, scheduling=lambda s: replace(s, cpu_offload=False))
        on_a = next(i.id for i in h.runtime.instances() if i.node == "a")
        queue, slot = await h.acquire("m")  # a request in flight on each instance
        held = [slot] + [(await h.acquire("m"))[1] for _ in range(2)]
        drain = asyncio.ensure_future(h.runtime.drain("a"))
        await until(lambda: len(h.engines("m")) == 4)  # the new one started beside the old
        assert not drain.done()  # the old one still answers its request
        for s in held:
            queue.release(s)
        drained = await drain
        (moved,) = drained.moved
        assert (moved.model, moved.instance, drained.stayed) == ("m", on_a, [])
        assert moved.node in ("b", "c")
        assert sorted(n for n, _ in where(h, "m")) in (["b", "b", "c"], ["b", "c", "c"])
        assert [w.drained for w in h.runtime.worker_notes().values()] == [True]

        with pytest.raises(WontFit, match="1 node left out drained for maintenance"):
            await h.runtime.load("m", replicas=5, scheduling=lambda s: replace(s, cpu_offload=False))
        await h.runtime.load("m", replicas=4, scheduling=lambda s: replace(s, cpu_offload=False))
        stuck = sorted(i.id for i in h.runtime.instances() if i.node == "b")
        drained = await h.runtime.drain("b")  # c is full: its two stay, and say why
        assert drained.moved == []
        assert [(s.instance, "drained for maintenance" in s.reason) for s in drained.stayed] == [
            (i, True) for i in stuck
        ]
        assert "needs 20.0 GiB of VRAM on one GPU" in drained.stayed[0].reason

        await h.runtime.undrain("a")
        await h.runtime.load("m", replicas=5, scheduling=lambda s: replace(s, cpu_offload=False))
        assert [n for n, _ in where(h, "m")].count("a") == 1
        with pytest.raises(NotFound, match="no worker 'z'"):
            await h.runtime.drain("z")


@run
async def test_a_check_says_where_a_deployment_would_run_and_why_not_elsewhere(tmp_path: Path) -> None:
    four = [
        *nodes(),
        Node("d", "127.0.0.1", 32 * GiB, 32 * GiB, (), {"zone": "y"}, backends=frozenset({"llama.cpp"})),
        Node("e", "127.0.0.1", 32 * GiB, 32 * GiB, (), {"zone": "y"}, paths=frozenset()),
    ]
    async with harness(tmp_path, nodes=list(four)) as h:
        h.backend.need, h.backend.vram = 14 * GiB, 20 * GiB
        h.add("m")
        await h.runtime.drain("a")
        wish = Deployment(
            model="m", replicas=2, scheduling=Scheduling(selector={"zone": "y"}, cpu_offload=False)
        )
        found = await h.runtime.check(wish, h.library.get("m"))
        assert (found.backend, found.replicas, found.placed) == ("fake", 2, 2)
        assert found.reason is None
        verdicts = {v.node: (v.way, v.kind, v.reason) for v in found.workers}
        assert verdicts == {
            "a": ("", "drained", "drained for maintenance"),
            "b": ("gpu", "", ""),
            "c": ("gpu", "", ""),
            "d": ("", "backend", "fake is not installed there"),
            "e": ("", "files", "the model's files are not there (/models/m.gguf)"),
        }
        assert h.runtime.instances() == []  # a check starts nothing

        h.executor.inventory[1:3] = [replace(n, labels={"zone": "x"}) for n in four[1:3]]
        found = await h.runtime.check(wish, h.library.get("m"))
        assert found.placed == 0
        assert "2 nodes left out by the selector zone=y" in (found.reason or "")
        assert {v.node: v.kind for v in found.workers}["b"] == "selector"
        assert {v.node: v.reason for v in found.workers}["b"] == "its labels do not match the selector zone=y"

        h.executor.inventory[1:3] = four[1:3]
        await h.runtime.load("m", replicas=2, scheduling=lambda s: wish.scheduling)  # b:0 and c:0
        found = await h.runtime.check(replace(wish, model="n", replicas=3), h.add("n"))
        assert found.placed == 2  # a GPU each on b:1 and c:1
        await h.runtime.unload("m")
        h.backend.need, h.backend.vram = 40 * GiB, 30 * GiB  # more than any GPU or node has
        found = await h.runtime.check(replace(wish, model="n"), h.library.get("n"))
        (b,) = [v for v in found.workers if v.node == "b"]
        assert (b.kind, b.reason) == (
            "memory",
            "needs 30.0 GiB of VRAM on one GPU (24.0 GiB available: 6.0 GiB short) "
            "or 40.0 GiB of RAM (32.0 GiB available: 8.0 GiB short)",
        )


@run
async def test_a_cpu_build_uses_no_gpu_and_the_check_says_so(tmp_path: Path) -> None:
    three = nodes()
    three[1] = replace(three[1], builds={"fake": "cpu"})  # b: its build of the backend is the CPU one
    async with harness(tmp_path, nodes=three) as h:
        h.backend.need, h.backend.vram, h.backend.beside = (
            40 * GiB,
            20 * GiB,
            2 * GiB,
        )  # on a GPU, or not at all
        h.add("m")
        wish = Deployment(model="m", scheduling=Scheduling(selector={"zone": "y"}, cpu_offload=False))
        found = await h.runtime.check(wish, h.library.get("m"))
        assert (found.placed, found.reason) == (1, None)
        verdicts = {v.node: (v.way, v.kind, v.reason) for v in found.workers}
        assert verdicts["c"] == ("gpu", "", "")
        assert verdicts["b"] == (
            "",
            "variant",
            "its fake is the CPU build, which uses none of its GPUs; on the CPU it needs 40.0 GiB of RAM "
            "(32.0 GiB available)",
        )
        await h.runtime.load("m", replicas=1, scheduling=lambda s: wish.scheduling)
        assert where(h, "m") == [("c", (0,))]  # never b, whose GPUs its build cannot use
        with pytest.raises(WontFit, match="the chosen GPUs' worker b has the CPU build of fake"):
            await h.runtime.load("m", scheduling=lambda s: Scheduling(gpus=["b:0"]))
