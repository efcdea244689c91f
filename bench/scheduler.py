"""The scheduler at cluster scale: about 1,000 instances of 150 deployments (mixed policies,
selectors and sizes) on 200 simulated nodes (8x80 GiB GPU nodes, 4x24 GiB GPU nodes and CPU
nodes), then 10 nodes die and their instances are placed again.

    .venv/bin/python bench/scheduler.py

Beside it, the peer's way: placement by instance count, as Xinference does (the node and GPU
with the fewest instances, memory not looked at), on the same cluster; it counts the GPUs and
nodes that way overbooks. Goals: all placed in < 1 s, no GPU over its memory; the 10 dead nodes'
instances placed again in < 100 ms. The last line is the ratio of the placement time to the
1 s goal (< 1: met).
"""

from __future__ import annotations

import random
import statistics
import time

from modelyard.runtime.executor import Gpu, Node
from modelyard.runtime.scheduler import BINPACK, SPREAD, Demand, Held, Plan, Wish, schedule

GiB = 1 << 30


def cluster(rng: random.Random) -> list[Node]:
    nodes = []
    for i in range(200):
        kind = ("a100x8", "l4x4", "cpu")[i % 3]
        gpus: tuple[Gpu, ...] = ()
        if kind == "a100x8":
            gpus = tuple(Gpu(g, "A100", 80 * GiB, 80 * GiB) for g in range(8))
        elif kind == "l4x4":
            gpus = tuple(Gpu(g, "L4", 24 * GiB, 24 * GiB) for g in range(4))
        ram = {"a100x8": 1024, "l4x4": 256, "cpu": 512}[kind] * GiB
        labels = {"zone": rng.choice("abcd"), "kind": kind}
        nodes.append(Node(f"node-{i:03d}", f"10.0.{i // 250}.{i % 250}", ram, ram, gpus, labels))
    return nodes


def deployments(rng: random.Random) -> list[Wish]:
    wishes = []
    total = 0
    i = 0
    while total < 1000:
        size = rng.choice([1, 2, 4, 8, 14, 20, 40, 70, 140])  # GiB of weights and cache
        replicas = min(1000 - total, rng.choice([2, 4, 6, 8, 12]))
        demand = Demand(
            ram_cpu=(size + 1) * GiB,
            ram_gpu=GiB,
            vram_fixed=GiB // 2,
            vram_split=size * GiB,
            layers=32,
            distributable=size >= 70,
        )
        selector = {"zone": rng.choice("abcd")} if rng.random() < 0.3 else {}
        wishes.append(
            Wish(
                f"model-{i}",
                replicas,
                demand,
                policy=BINPACK if rng.random() < 0.4 else SPREAD,
                selector=selector,
                cpu_offload=rng.random() < 0.2,
                distributed=size >= 70 and rng.random() < 0.5,
            )
        )
        total += replicas
        i += 1
    return wishes


def overbooked(plan: Plan, nodes: list[Node]) -> tuple[int, int]:
    """GPUs and nodes whose claims pass their memory."""
    vram: dict[tuple[str, int], int] = {}
    ram: dict[str, int] = {}
    for d in plan.decisions:
        for c in d.claims:
            ram[c.node] = ram.get(c.node, 0) + c.ram
            for index, amount in c.vram:
                vram[c.node, index] = vram.get((c.node, index), 0) + amount
    totals = {(n.id, g.index): g.vram_total for n in nodes for g in n.gpus}
    gpus = sum(1 for key, used in vram.items() if used > totals[key])
    by_id = {n.id: n for n in nodes}
    return gpus, sum(1 for key, used in ram.items() if used > by_id[key].ram_total)


def by_count(wishes: list[Wish], nodes: list[Node]) -> tuple[int, int, float]:
    """Xinference's way: each replica to the GPU with the fewest instances; memory not looked at."""
    start = time.perf_counter()
    count: dict[tuple[str, int], int] = {(n.id, g.index): 0 for n in nodes for g in n.gpus}
    used: dict[tuple[str, int], int] = dict.fromkeys(count, 0)
    for w in wishes:
        for _ in range(w.replicas):
            key = min(count, key=lambda k: (count[k], k))
            count[key] += 1
            used[key] += w.demand.vram_fixed + w.demand.vram_split
    seconds = time.perf_counter() - start
    totals = {(n.id, g.index): g.vram_total for n in nodes for g in n.gpus}
    over = [k for k, u in used.items() if u > totals[k]]
    return len(over), len({k[0] for k in over}), seconds


def main() -> None:
    rng = random.Random(15)
    nodes = cluster(rng)
    wishes = deployments(rng)
    asked = sum(w.replicas for w in wishes)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        plan = schedule(wishes, [], nodes)
        times.append(time.perf_counter() - start)
    placed = len(plan.decisions)
    ways: dict[str, int] = {}
    for d in plan.decisions:
        ways[d.way] = ways.get(d.way, 0) + 1
    gpus_over, nodes_over = overbooked(plan, nodes)
    print(f"{len(nodes)} nodes, {len(wishes)} deployments, {asked} instances asked for")
    print(
        f"placed {placed}, pending {asked - placed}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(ways.items()))
    )
    print(
        f"placement: median {statistics.median(times) * 1000:.0f} ms of 5 runs; overbooked GPUs {gpus_over}, nodes {nodes_over}"
    )

    held = [Held(d.wish, i, d.claims) for i, d in enumerate(plan.decisions)]
    dead = {n.id for n in nodes if n.gpus}
    dead = set(sorted(dead, key=lambda n: -sum(1 for h in held if h.claims[0].node == n))[:10])
    after = [
        Node(n.id, n.address, n.ram_total, n.ram_free, n.gpus, n.labels, alive=n.id not in dead)
        for n in nodes
    ]
    retimes = []
    for _ in range(5):
        start = time.perf_counter()
        again = schedule(wishes, held, after)
        retimes.append(time.perf_counter() - start)
    print(
        f"10 nodes die ({len(again.displaced)} instances on them): {len(again.decisions)} placed again, "
        f"{sum(p.count for p in again.pending)} pending, median {statistics.median(retimes) * 1000:.0f} ms; "
        f"overbooked GPUs {overbooked(again, after)[0]}"
    )
    peer_gpus, peer_nodes, peer_seconds = by_count(wishes, nodes)
    print(
        f"by instance count (Xinference's way): {peer_seconds * 1000:.0f} ms, overbooked GPUs {peer_gpus} on {peer_nodes} nodes"
    )
    print(f"ratio (placement time / 1 s goal): {statistics.median(times):.3f}")


if __name__ == "__main__":
    main()
