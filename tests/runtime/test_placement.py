"""Where the runtime places instances: the deployment's scheduling over the executor's nodes."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from modelyard.catalog.records import Scheduling
from modelyard.errors import InvalidSettings, WontFit
from modelyard.runtime.executor import Gpu, Node
from runtime.fakes import Harness, harness, run

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
