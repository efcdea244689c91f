"""The scheduler: a pure function from wishes, held instances and nodes to a plan."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.runtime.executor import Claim, Gpu, Node
from modelyard.runtime.scheduler import BINPACK, SPREAD, Demand, Held, Plan, Wish, schedule

GiB = 1 << 30


def node(name: str, gpus: int = 0, vram: int = 24, ram: int = 64, **labels: str) -> Node:
    return Node(
        name,
        "127.0.0.1",
        ram * GiB,
        ram * GiB,
        tuple(Gpu(i, "test", vram * GiB, vram * GiB) for i in range(gpus)),
        labels,
    )


SMALL = Demand(ram_cpu=6 * GiB, ram_gpu=1 * GiB, vram_fixed=1 * GiB, vram_split=4 * GiB, layers=25)
BIG = Demand(
    ram_cpu=40 * GiB, ram_gpu=2 * GiB, vram_fixed=1 * GiB, vram_split=36 * GiB, layers=40, distributable=True
)


def where(plan: Plan) -> list[tuple[str, tuple[int, ...], str]]:
    return [(d.node, d.gpus, d.way) for d in plan.decisions]


def per_gpu(plan: Plan, held: list[Held] = ()) -> dict[tuple[str, int], int]:  # type: ignore[assignment]
    used: dict[tuple[str, int], int] = {}
    claims = [c for d in plan.decisions for c in d.claims] + [c for h in held for c in h.claims]
    for c in claims:
        for index, amount in c.vram:
            used[c.node, index] = used.get((c.node, index), 0) + amount
    return used


def test_spread_puts_replicas_on_different_nodes_and_binpack_fills_one() -> None:
    nodes = [node("a", 2), node("b", 2), node("c", 2)]
    spread = schedule([Wish("m", 3, SMALL, SPREAD)], [], nodes)
    assert sorted(n for n, _, _ in where(spread)) == ["a", "b", "c"]
    assert {w for _, _, w in where(spread)} == {"gpu"}
    packed = schedule([Wish("m", 3, SMALL, BINPACK)], [], nodes)
    assert [n for n, _, _ in where(packed)] == ["a", "a", "a"]
    # binpack fills one GPU before the next: 5 GiB each on a 24 GiB GPU
    assert [g for _, g, _ in where(packed)] == [(0,), (0,), (0,)]


def test_spread_counts_the_deployment_then_all_instances() -> None:
    nodes = [node("a", 1), node("b", 1)]
    held = [Held("other", 1, (Claim("a", GiB, ((0, 5 * GiB),)),))]
    plan = schedule([Wish("m", 1, SMALL)], held, nodes)
    assert where(plan) == [("b", (0,), "gpu")]  # a already runs something


def test_a_selector_lands_where_it_says_and_pending_says_why() -> None:
    nodes = [node("a", 1, zone="x"), node("b", 1, zone="y"), node("c", 1, zone="y")]
    plan = schedule([Wish("m", 2, SMALL, selector={"zone": "y"})], [], nodes)
    assert sorted(n for n, _, _ in where(plan)) == ["b", "c"]
    nowhere = schedule([Wish("m", 1, SMALL, selector={"zone": "z"})], [], nodes)
    assert nowhere.decisions == []
    (pending,) = nowhere.pending
    assert pending.count == 1
    assert "3 nodes left out by the selector zone=z" in pending.reason


def test_the_order_one_gpu_then_a_split_then_nodes_then_offload_then_cpu() -> None:
    # 37 GiB of VRAM: no single 24 GiB GPU, two of one node do
    plan = schedule([Wish("m", 1, BIG)], [], [node("a", 2)])
    (d,) = plan.decisions
    assert (d.way, d.gpus) == ("gpus", (0, 1))
    assert d.tensor_split == (0.5, 0.5)
    assert sum(a for _, a in d.claims[0].vram) >= BIG.vram_fixed * 2 + BIG.vram_split
    # one GPU per node: spread over two nodes when allowed, else offload, else the CPU
    one_each = [node("a", 1), node("b", 1, vram=16)]
    (d,) = schedule([Wish("m", 1, BIG, distributed=True)], [], one_each).decisions
    assert (d.way, d.node, d.peers) == ("distributed", "a", ("b",))
    assert [c.node for c in d.claims] == ["a", "b"]
    assert d.tensor_split == (0.5997, 0.4003)  # by node: the VRAM claimed on each
    (d,) = schedule([Wish("m", 1, BIG, cpu_offload=True)], [], one_each).decisions
    assert d.way == "offload"
    assert d.gpu_layers is not None
    assert 0 < d.gpu_layers < BIG.layers
    assert d.claims[0].vram[0][1] <= 24 * GiB
    (d,) = schedule([Wish("m", 1, BIG)], [], one_each).decisions
    assert (d.way, d.gpus, d.gpu_layers) == ("cpu", (), 0)
    assert d.claims == (Claim("a", BIG.ram_cpu),)


def test_what_fits_nowhere_stays_pending_with_the_numbers() -> None:
    plan = schedule([Wish("m", 2, BIG)], [], [node("a", 1, ram=48), node("b", ram=32)])
    assert [d.way for d in plan.decisions] == ["cpu"]
    (pending,) = plan.pending
    assert pending.count == 1
    assert pending.reason == (
        "needs 37.0 GiB of VRAM on one GPU or 40.0 GiB of RAM on the CPU; "
        "the most free: 24.0 GiB on a:0, 32.0 GiB of RAM on b"
    )


def test_memory_outside_modelyard_and_unstarted_claims_count() -> None:
    busy = Node("a", "127.0.0.1", 64 * GiB, 4 * GiB)  # 60 GiB used by something else
    plan = schedule([Wish("m", 1, SMALL)], [], [busy])
    assert plan.decisions == []
    assert "6.0 GiB of RAM" in plan.pending[0].reason
    roomy = Node("a", "127.0.0.1", 64 * GiB, 64 * GiB)
    starting = Held("other", 7, (Claim("a", 60 * GiB),), running=False)
    assert schedule([Wish("m", 1, SMALL)], [starting], [roomy]).decisions == []


def test_chosen_gpus_are_used_as_chosen_and_never_moved() -> None:
    nodes = [node("a", 2), node("b", 2)]
    (d,) = schedule([Wish("m", 1, SMALL, gpus=(("b", 1),))], [], nodes).decisions
    assert (d.node, d.gpus) == ("b", (1,))
    both = schedule([Wish("m", 2, SMALL, gpus=(("a", 0), ("b", 1)))], [], nodes)
    assert sorted((d.node, d.gpus) for d in both.decisions) == [("a", (0,)), ("b", (1,))]
    gone = [node("a", 2), Node("b", "127.0.0.1", 0, 0, alive=False)]
    held = [Held("m", 3, (Claim("b", GiB, ((1, 5 * GiB),)),))]
    plan = schedule([Wish("m", 1, SMALL, gpus=(("b", 1),))], held, gone)
    assert plan.displaced == [3]
    assert plan.decisions == []
    assert plan.pending[0].reason == "the chosen GPUs' worker b is not in the cluster"


def test_instances_on_a_dead_node_are_placed_again() -> None:
    nodes = [node("a", 1), node("b", 1), node("c", 1)]
    first = schedule([Wish("m", 3, SMALL)], [], nodes)
    held = [Held("m", i, d.claims) for i, d in enumerate(first.decisions)]
    nodes[1] = Node("b", "127.0.0.1", 0, 0, alive=False)
    again = schedule([Wish("m", 3, SMALL)], held, nodes)
    assert again.displaced == [1]
    assert [d.node for d in again.decisions] == ["a"]  # a and c each run one: the first by id


def test_backends_and_files_are_looked_for_where_nodes_report_them() -> None:
    a = Node("a", "h", 64 * GiB, 64 * GiB, backends=frozenset({"vllm"}))
    b = Node("b", "h", 64 * GiB, 64 * GiB, backends=frozenset({"llama.cpp"}), paths=frozenset())
    c = Node("c", "h", 8 * GiB, 8 * GiB, backends=frozenset({"llama.cpp"}), paths=frozenset({"/m.gguf"}))
    plan = schedule([Wish("m", 2, SMALL, backend="llama.cpp", path="/m.gguf")], [], [a, b, c])
    assert [d.node for d in plan.decisions] == ["c"]
    assert plan.pending[0].reason == (
        "needs 6.0 GiB of RAM on the CPU; the most free: 2.0 GiB of RAM on c; "
        "1 node left out without llama.cpp; 1 node left out without the model's files"
    )


def test_no_estimate_places_on_the_node_with_all_its_gpus() -> None:
    plan = schedule([Wish("m", 1, Demand(0, estimated=False))], [], [node("a", 2)])
    assert where(plan) == [("a", (0, 1), "unestimated")]


def test_the_same_input_gives_the_same_plan() -> None:
    nodes = [node(f"n{i}", i % 3, vram=16 + i) for i in range(12)]
    wishes = [Wish(f"m{i}", 1 + i % 4, [SMALL, BIG][i % 2], [SPREAD, BINPACK][i % 3 == 0]) for i in range(9)]
    assert schedule(wishes, [], nodes) == schedule(wishes, [], list(reversed(nodes)))


@settings(max_examples=60, deadline=None)
@given(
    gpus=st.lists(st.tuples(st.integers(0, 4), st.integers(4, 80)), min_size=1, max_size=8),
    wishes=st.lists(
        st.tuples(st.integers(1, 5), st.integers(1, 60), st.booleans(), st.booleans(), st.booleans()),
        min_size=1,
        max_size=8,
    ),
)
def test_no_gpu_or_ram_is_ever_overbooked(
    gpus: list[tuple[int, int]], wishes: list[tuple[int, int, bool, bool, bool]]
) -> None:
    nodes = [node(f"n{i}", count, vram, ram=32) for i, (count, vram) in enumerate(gpus)]
    asked = [
        Wish(
            f"m{i}", replicas,
            Demand(size * GiB // 2, GiB // 2, GiB // 4, size * GiB, layers=32, distributable=True),
            BINPACK if pack else SPREAD, cpu_offload=offload, distributed=spread_out,
        )
        for i, (replicas, size, pack, offload, spread_out) in enumerate(wishes)
    ]  # fmt: skip
    plan = schedule(asked, [], nodes)
    for (name, index), used in per_gpu(plan).items():
        total = next(g.vram_total for n in nodes if n.id == name for g in n.gpus if g.index == index)
        assert used <= total
    for n in nodes:
        assert sum(c.ram for d in plan.decisions for c in d.claims if c.node == n.id) <= n.ram_total
    placed = {w.name: 0 for w in asked}
    for d in plan.decisions:
        placed[d.wish] += 1
    short = {p.wish: p.count for p in plan.pending}
    assert all(placed[w.name] + short.get(w.name, 0) == w.replicas for w in asked)
