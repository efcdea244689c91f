"""The scheduler: where the instances of deployments go, as a pure function.

``schedule(wishes, held, nodes)`` takes what each deployment wants (replicas, policy, selector,
chosen GPUs, and its Demand: what one instance needs in each way it can run, from modelyard's own
estimates), the instances already placed with the memory they claim, and the node inventory; it
returns a Decision for each instance to start, or Pending with the reason and the numbers. No
I/O, no clock, no randomness: the same input gives the same plan.

For each new instance, in this order, the first way that fits on some node wins:

1. one GPU;
2. several GPUs of one node (a tensor split in proportion to what each has free);
3. several nodes (distributed, where the deployment allows it and the engine can: llama.cpp);
4. part of the layers on the node's GPUs and the rest on its CPU (where allowed);
5. the CPU.

A node drained for maintenance takes nothing new (chosen GPUs there included); selectors, the
backend installed and the model's files decide the others, and a node whose build of the backend
is its CPU build (where the node says) is not asked to put the instance on its GPUs. ``verdicts`` asks the same of each
node alone: whether one instance fits there, and if not why (with the memory it is short by).

Among the nodes where a way fits, ``binpack`` takes the most used one and ``spread`` the one with
the fewest instances of this deployment, then of all, then the most free memory. Chosen GPUs
(``gpus``: worker and index) are used as chosen and never swapped for others.

A node's available memory is what its claims leave of its total, and never more than it reports
free less what the claims not yet running will take: memory used outside modelyard counts too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from modelyard.runtime.executor import Claim, Node

SPREAD, BINPACK = "spread", "binpack"
# why a node cannot take an instance (Verdict.kind)
GONE, DRAINED, SELECTOR, BACKEND, FILES = "gone", "drained", "selector", "backend", "files"
GPUS, MEMORY, VARIANT = "gpus", "memory", "variant"
POLICIES = (SPREAD, BINPACK)
GiB = 1 << 30


@dataclass(frozen=True)
class Demand:
    """What one instance needs, from the backend's estimate, in each way it can run."""

    ram_cpu: int  # RAM with everything on the CPU
    ram_gpu: int = 0  # RAM beside it when every layer is on GPUs
    vram_fixed: int = 0  # on each GPU it uses: compute buffers, the engine's own
    vram_split: int = 0  # what a tensor split divides among GPUs (weights, KV cache); 0: no GPU use
    layers: int = 0  # layers that may move between GPU and CPU (0: not the engine's choice)
    distributable: bool = False  # the engine can spread its layers over nodes (llama.cpp RPC)
    estimated: bool = True  # False: the backend has no estimate; placed without a memory check

    @property
    def per_layer(self) -> int:
        return -(-self.vram_split // self.layers) if self.layers else 0


@dataclass(frozen=True)
class Wish:
    """A deployment, as the scheduler sees it."""

    name: str
    replicas: int
    demand: Demand
    policy: str = SPREAD
    selector: dict[str, str] = field(default_factory=dict)  # labels a node must have
    gpus: tuple[tuple[str, int], ...] = ()  # chosen by hand: (node, GPU index)
    cpu_offload: bool = False  # may run part of its layers on the CPU
    distributed: bool = False  # may spread over several nodes
    backend: str = ""  # a node must have it installed (when the node reports its backends)
    path: str = ""  # a node must have the model's files (when the node reports paths)


@dataclass(frozen=True)
class Held:
    """An instance already placed."""

    wish: str
    instance: int
    claims: tuple[Claim, ...]
    running: bool = True  # its memory already shows in its nodes' free figures


@dataclass(frozen=True)
class Decision:
    """One new instance: where it runs and what it claims there."""

    wish: str
    way: str  # gpu, gpus, distributed, offload, cpu, unestimated
    node: str  # the node its engine (the main one, when distributed) runs on
    gpus: tuple[int, ...]  # the GPUs it uses on that node
    claims: tuple[Claim, ...]
    gpu_layers: int | None = None  # layers on GPUs (offload: some; cpu: 0); None: as the options say
    # shares of its GPUs (in the order of ``gpus``); distributed: of its nodes (this one, then peers)
    tensor_split: tuple[float, ...] = ()
    peers: tuple[str, ...] = ()  # other nodes holding a share (distributed)


@dataclass(frozen=True)
class Pending:
    wish: str
    count: int
    reason: str


@dataclass
class Plan:
    decisions: list[Decision] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    displaced: list[int] = field(default_factory=list)  # held instances on nodes that are gone


@dataclass
class _Gpu:
    index: int
    total: int
    avail: int


@dataclass
class _Node:
    node: Node
    ram_total: int
    ram_avail: int
    gpus: list[_Gpu]
    count: int = 0  # instances on it
    by_wish: dict[str, int] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.node.id

    def max_gpu(self) -> int:
        return max((g.avail for g in self.gpus), default=0)

    def vram_total(self) -> int:
        return sum(g.total for g in self.gpus)

    def vram_avail(self) -> int:
        return sum(g.avail for g in self.gpus)

    def take(self, claim: Claim, wish: str) -> None:
        self.ram_avail -= claim.ram
        by_index = {g.index: g for g in self.gpus}
        for index, amount in claim.vram:
            if index in by_index:
                by_index[index].avail -= amount
        self.count += 1
        self.by_wish[wish] = self.by_wish.get(wish, 0) + 1


def schedule(wishes: Sequence[Wish], held: Iterable[Held], nodes: Sequence[Node]) -> Plan:
    """Decisions for the instances each wish lacks, or Pending with why."""
    plan = Plan()
    state, have = _state(held, nodes, plan.displaced)
    for wish in wishes:
        missing = wish.replicas - have.get(wish.name, 0)
        if missing <= 0:
            continue
        eligible, excluded = _eligible(wish, state)
        undrained = {n.id: n for n in state.values() if not n.node.drained}
        for placed in range(missing):
            decision = _manual(wish, undrained) if wish.gpus else _auto(wish, eligible)
            if decision is None:
                reason = _why(wish, eligible, excluded, state)
                plan.pending.append(Pending(wish.name, missing - placed, reason))
                break
            for i, claim in enumerate(decision.claims):
                node = state[claim.node]
                if i == 0:
                    node.take(claim, wish.name)
                else:  # a peer's share: memory, not an instance
                    node.ram_avail -= claim.ram
                    for index, amount in claim.vram:
                        next(g for g in node.gpus if g.index == index).avail -= amount
            plan.decisions.append(decision)
    return plan


def _state(
    held: Iterable[Held], nodes: Sequence[Node], displaced: list[int]
) -> tuple[dict[str, _Node], dict[str, int]]:
    """Each live node with what its claims leave available, and each wish's instances held;
    the held instances on nodes that are gone go to ``displaced``."""
    alive = {n.id: n for n in nodes if n.alive}
    unstarted: dict[str, int] = {}
    kept: list[Held] = []
    for h in held:
        if all(c.node in alive for c in h.claims):
            kept.append(h)
        else:
            displaced.append(h.instance)
    claimed_ram: dict[str, int] = {}
    claimed_vram: dict[tuple[str, int], int] = {}
    unstarted_vram: dict[tuple[str, int], int] = {}
    for h in kept:
        for c in h.claims:
            claimed_ram[c.node] = claimed_ram.get(c.node, 0) + c.ram
            if not h.running:
                unstarted[c.node] = unstarted.get(c.node, 0) + c.ram
            for index, amount in c.vram:
                claimed_vram[c.node, index] = claimed_vram.get((c.node, index), 0) + amount
                if not h.running:
                    unstarted_vram[c.node, index] = unstarted_vram.get((c.node, index), 0) + amount
    state: dict[str, _Node] = {}
    for node_id in sorted(alive):
        n = alive[node_id]
        ram = min(n.ram_total - claimed_ram.get(node_id, 0), n.ram_free - unstarted.get(node_id, 0))
        gpus = [
            _Gpu(
                g.index,
                g.vram_total,
                min(
                    g.vram_total - claimed_vram.get((node_id, g.index), 0),
                    g.vram_free - unstarted_vram.get((node_id, g.index), 0),
                ),
            )
            for g in n.gpus
        ]
        state[node_id] = _Node(n, n.ram_total, ram, gpus)
    have: dict[str, int] = {}
    for h in kept:
        have[h.wish] = have.get(h.wish, 0) + 1
        if h.claims:  # an instance counts where its engine runs (its first claim), not its peers
            node = state[h.claims[0].node]
            node.count += 1
            node.by_wish[h.wish] = node.by_wish.get(h.wish, 0) + 1
    return state, have


# -- filters ----------------------------------------------------------------------------------


def _eligible(wish: Wish, state: dict[str, _Node]) -> tuple[list[_Node], dict[str, list[str]]]:
    """The nodes a wish may use, and the others by why not."""
    ok: list[_Node] = []
    excluded: dict[str, list[str]] = {}
    for node in state.values():
        kind = _excluded_by(wish, node.node)
        if kind:
            excluded.setdefault(_left_out(wish, kind), []).append(node.id)
        else:
            ok.append(node)
    return ok, excluded


def _excluded_by(wish: Wish, node: Node) -> str:
    """Why ``node`` may not take the wish at all (a kind of Verdict), or ""."""
    if node.drained:
        return DRAINED
    if any(node.labels.get(key) != value for key, value in wish.selector.items()):
        return SELECTOR
    if wish.backend and node.backends is not None and wish.backend not in node.backends:
        return BACKEND
    if wish.path and node.paths is not None and wish.path not in node.paths:
        return FILES
    return ""


def _gpu_build(wish: Wish, node: Node) -> bool:
    """Whether the wish's backend there may use the node's GPUs: not its CPU build."""
    return node.builds is None or node.builds.get(wish.backend) != "cpu"


def _selector(wish: Wish) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(wish.selector.items()))


def _left_out(wish: Wish, kind: str) -> str:
    """Why nodes were left out, as a group."""
    return {
        DRAINED: "drained for maintenance",
        SELECTOR: f"by the selector {_selector(wish)}",
        BACKEND: f"without {wish.backend}",
        FILES: "without the model's files",
    }[kind]


# -- automatic placement ----------------------------------------------------------------------


def _auto(wish: Wish, nodes: list[_Node]) -> Decision | None:
    d = wish.demand
    if not nodes:
        return None
    if not d.estimated:
        node = _best(wish, nodes, lambda n: True, ram=True)
        if node is None:
            return None
        gpus = tuple(g.index for g in node.gpus)
        return Decision(wish.name, "unestimated", node.id, gpus, (Claim(node.id, 0),))
    on_gpus = [n for n in nodes if _gpu_build(wish, n.node)]
    if d.vram_split and on_gpus:
        found = _one_gpu(wish, on_gpus) or _node_gpus(wish, on_gpus)
        if found is None and wish.distributed and d.distributable:
            found = _across_nodes(wish, on_gpus, gpu=True)
        if found is None and wish.cpu_offload and d.layers:
            found = _offload(wish, on_gpus)
        if found is not None:
            return found
    node = _best(wish, nodes, lambda n: n.ram_avail >= d.ram_cpu, ram=True)
    if node is not None:
        return Decision(wish.name, "cpu", node.id, (), (Claim(node.id, d.ram_cpu),), gpu_layers=0)
    if wish.distributed and d.distributable:
        return _across_nodes(wish, nodes, gpu=False)
    return None


def _best(wish: Wish, nodes: list[_Node], fits: Callable[[_Node], bool], *, ram: bool) -> _Node | None:
    """The node the wish's policy picks among those where ``fits`` holds."""
    best: _Node | None = None
    best_key: tuple[float, ...] | None = None
    binpack = wish.policy == BINPACK
    for node in nodes:
        if not fits(node):
            continue
        if binpack:
            if ram or not node.gpus:
                used = 1 - node.ram_avail / node.ram_total if node.ram_total else 0.0
            else:
                total = node.vram_total()
                used = 1 - node.vram_avail() / total if total else 0.0
            key: tuple[float, ...] = (-used,)
        else:
            free = node.ram_avail if ram else node.vram_avail()
            key = (node.by_wish.get(wish.name, 0), node.count, -free)
        if best_key is None or key < best_key:  # nodes come sorted by id: ties go to the first
            best, best_key = node, key
    return best


def _one_gpu(wish: Wish, nodes: list[_Node]) -> Decision | None:
    d = wish.demand
    need = d.vram_fixed + d.vram_split
    node = _best(wish, nodes, lambda n: n.max_gpu() >= need and n.ram_avail >= d.ram_gpu, ram=False)
    if node is None:
        return None
    fitting = [g for g in node.gpus if g.avail >= need]
    # binpack: the fullest GPU that fits; spread: the emptiest
    gpu = (
        min(fitting, key=lambda g: (g.avail, g.index))
        if wish.policy == BINPACK
        else max(fitting, key=lambda g: (g.avail, -g.index))
    )
    claim = Claim(node.id, d.ram_gpu, ((gpu.index, need),))
    return Decision(wish.name, "gpu", node.id, (gpu.index,), (claim,), gpu_layers=d.layers or None)


def _split(d: Demand, gpus: list[_Gpu]) -> list[_Gpu] | None:
    """The fewest of ``gpus`` (most free first) whose room past the fixed part takes the split."""
    chosen: list[_Gpu] = []
    room = 0
    for g in sorted(gpus, key=lambda g: (-g.avail, g.index)):
        if g.avail <= d.vram_fixed:
            break
        chosen.append(g)
        room += g.avail - d.vram_fixed
        if room >= d.vram_split:
            return chosen
    return None


def _shares(d: Demand, gpus: list[_Gpu]) -> tuple[list[int], tuple[float, ...]]:
    """Each GPU's bytes and its share of the split, in proportion to its room."""
    room = [g.avail - d.vram_fixed for g in gpus]
    total = sum(room)
    amounts = [d.vram_fixed + -(-d.vram_split * r // total) for r in room]
    return amounts, tuple(round(r / total, 4) for r in room)


def _node_gpus(wish: Wish, nodes: list[_Node]) -> Decision | None:
    d = wish.demand
    picks: dict[str, list[_Gpu]] = {}

    def fits(n: _Node) -> bool:
        if len(n.gpus) < 2 or n.ram_avail < d.ram_gpu:
            return False
        chosen = _split(d, n.gpus)
        if chosen is None:
            return False
        picks[n.id] = chosen
        return True

    node = _best(wish, nodes, fits, ram=False)
    if node is None:
        return None
    chosen = sorted(picks[node.id], key=lambda g: g.index)
    amounts, split = _shares(d, chosen)
    claim = Claim(node.id, d.ram_gpu, tuple((g.index, a) for g, a in zip(chosen, amounts, strict=True)))
    gpus = tuple(g.index for g in chosen)
    return Decision(wish.name, "gpus", node.id, gpus, (claim,), d.layers or None, split)


def _offload(wish: Wish, nodes: list[_Node]) -> Decision | None:
    """Layers on one node's GPUs as far as they go, the rest on its CPU."""
    d = wish.demand
    plans: dict[str, tuple[int, list[_Gpu]]] = {}

    def fits(n: _Node) -> bool:
        gpus = [g for g in n.gpus if g.avail > d.vram_fixed + d.per_layer]
        layers = min(d.layers - 1, sum((g.avail - d.vram_fixed) // d.per_layer for g in gpus))
        if layers < 1 or n.ram_avail < d.ram_gpu + (d.layers - layers) * d.per_layer:
            return False
        plans[n.id] = (layers, gpus)
        return True

    node = _best(wish, nodes, fits, ram=False)
    if node is None:
        return None
    layers, gpus = plans[node.id]
    gpus.sort(key=lambda g: g.index)
    rooms = [(g.avail - d.vram_fixed) // d.per_layer for g in gpus]
    left, counts = layers, []
    for r in rooms:  # fill in index order
        counts.append(min(r, left))
        left -= counts[-1]
    used = [(g, c, r) for g, c, r in zip(gpus, counts, rooms, strict=True) if c]
    # a GPU its layers fill is claimed whole: the engine's own count may use what is left over
    vram = tuple((g.index, g.avail if c == r else d.vram_fixed + c * d.per_layer) for g, c, r in used)
    ram = d.ram_gpu + (d.layers - layers) * d.per_layer
    split = tuple(round(c / layers, 4) for _, c, _ in used) if len(used) > 1 else ()
    claim = Claim(node.id, ram, vram)
    return Decision(
        wish.name, "offload", node.id, tuple(g.index for g, _, _ in used), (claim,), layers, split
    )


def _across_nodes(wish: Wish, nodes: list[_Node], *, gpu: bool) -> Decision | None:
    """One instance over several nodes: GPUs (or, without, RAM) from the roomiest first; the
    engine runs where the biggest share is, the others serve their part (llama.cpp RPC)."""
    d = wish.demand
    if gpu:
        pool = sorted(
            ((n, g) for n in nodes for g in n.gpus if g.avail > d.vram_fixed),
            key=lambda p: (-p[1].avail, p[0].id, p[1].index),
        )
        room, chosen = 0, []
        for n, g in pool:
            chosen.append((n, g))
            room += g.avail - d.vram_fixed
            if room >= d.vram_split:
                break
        else:
            return None
        main = chosen[0][0]
        if main.ram_avail < d.ram_gpu or len({n.id for n, _ in chosen}) < 2:
            return None
        chosen.sort(key=lambda p: (p[0] is not main, p[0].id, p[1].index))
        claims, _ = _claims(d, chosen, main)
        gpus = tuple(g.index for n, g in chosen if n is main)
        peers = tuple(c.node for c in claims[1:])
        return Decision(
            wish.name, "distributed", main.id, gpus, claims, d.layers or None, _by_node(claims), peers
        )
    room, taken = 0, []
    for n in sorted(nodes, key=lambda n: (-n.ram_avail, n.id)):
        if n.ram_avail <= 0 or room >= d.ram_cpu:
            break
        taken.append(n)
        room += n.ram_avail
    if room < d.ram_cpu or len(taken) < 2:
        return None
    shares = [n.ram_avail / room for n in taken]
    claims_cpu = tuple(Claim(n.id, -(-d.ram_cpu * n.ram_avail // room)) for n in taken)
    split = tuple(round(s, 4) for s in shares)
    return Decision(
        wish.name, "distributed", taken[0].id, (), claims_cpu, 0, split, tuple(n.id for n in taken[1:])
    )


# -- chosen GPUs ------------------------------------------------------------------------------


def _manual(wish: Wish, state: dict[str, _Node]) -> Decision | None:
    """The chosen GPUs, grouped by node: each instance takes a group (the least used by this
    wish first); with ``distributed``, an instance takes them all."""
    groups: dict[str, list[int]] = {}
    for node_id, index in wish.gpus:
        groups.setdefault(node_id, []).append(index)
    if any(node_id not in state or not _gpu_build(wish, state[node_id].node) for node_id in groups):
        return None
    if wish.distributed and len(groups) > 1:
        return _manual_group(wish, [(state[n], ix) for n, ix in groups.items()])
    order = sorted(groups, key=lambda n: (state[n].by_wish.get(wish.name, 0), list(groups).index(n)))
    for node_id in order:
        found = _manual_group(wish, [(state[node_id], groups[node_id])])
        if found is not None:
            return found
    return None


def _manual_group(wish: Wish, parts: list[tuple[_Node, list[int]]]) -> Decision | None:
    d = wish.demand
    chosen: list[tuple[_Node, _Gpu]] = []
    for node, indexes in parts:
        by_index = {g.index: g for g in node.gpus}
        if any(i not in by_index for i in indexes):
            return None
        chosen += [(node, by_index[i]) for i in indexes]
    main = parts[0][0]
    peers = tuple(n.id for n, _ in parts[1:])
    if not d.estimated:
        held = tuple(Claim(n.id, 0) for n, _ in parts)
        return Decision(wish.name, "unestimated", main.id, tuple(parts[0][1]), held, None, (), peers)
    room = sum(g.avail - d.vram_fixed for _, g in chosen)
    if any(g.avail <= d.vram_fixed for _, g in chosen) or room < d.vram_split or main.ram_avail < d.ram_gpu:
        return None
    claims, split = _claims(d, chosen, main)
    way = "distributed" if len(parts) > 1 else ("gpus" if len(chosen) > 1 else "gpu")
    split = _by_node(claims) if len(parts) > 1 else split if len(chosen) > 1 else ()
    return Decision(wish.name, way, main.id, tuple(parts[0][1]), claims, d.layers or None, split, peers)


def _by_node(claims: tuple[Claim, ...]) -> tuple[float, ...]:
    """Each node's share of a distributed instance: of the VRAM it claims there."""
    amounts = [sum(a for _, a in c.vram) for c in claims]
    return tuple(round(a / sum(amounts), 4) for a in amounts)


def _claims(
    d: Demand, chosen: list[tuple[_Node, _Gpu]], main: _Node
) -> tuple[tuple[Claim, ...], tuple[float, ...]]:
    """The claims of an instance over ``chosen`` GPUs (main node first), and the tensor split."""
    amounts, split = _shares(d, [g for _, g in chosen])
    claims: dict[str, Claim] = {}
    for (n, g), amount in zip(chosen, amounts, strict=True):
        c = claims.get(n.id, Claim(n.id, d.ram_gpu if n is main else 0))
        claims[n.id] = Claim(n.id, c.ram, (*c.vram, (g.index, amount)))
    return tuple(claims.values()), split


# -- one node at a time --------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Whether one more instance of a wish fits on a node, and if not why."""

    node: str
    way: str = ""  # how it would run there (gpu, gpus, offload, cpu, unestimated); "": it cannot
    kind: str = ""  # why not: gone, drained, selector, backend, files, gpus, memory, variant
    reason: str = ""


def verdicts(wish: Wish, held: Iterable[Held], nodes: Sequence[Node]) -> list[Verdict]:
    """For each node, whether one more instance of ``wish`` fits there alone, by the same
    filters and ways ``schedule`` uses, and for each that cannot, why (with the memory it is
    short by)."""
    state, _ = _state(held, nodes, [])
    out = []
    for n in sorted(nodes, key=lambda n: n.id):
        kind = GONE if not n.alive else _excluded_by(wish, n)
        if kind:
            out.append(Verdict(n.id, kind=kind, reason=_alone(wish, kind)))
            continue
        node = state[n.id]
        if wish.gpus:
            mine = tuple((i, x) for i, x in wish.gpus if i == n.id)
            if not mine:
                out.append(Verdict(n.id, kind=GPUS, reason="none of the chosen GPUs is there"))
                continue
            decision = _manual(replace(wish, gpus=mine, distributed=False), {n.id: node})
        else:
            decision = _auto(replace(wish, distributed=False), [node])
        if decision is not None:
            out.append(Verdict(n.id, way=decision.way))
        elif not _gpu_build(wish, n) and n.gpus and (wish.gpus or wish.demand.vram_split):
            why = f"its {wish.backend} is the CPU build, which uses none of its GPUs"
            if not wish.gpus:
                d = wish.demand
                why += f"; on the CPU it needs {_gib(d.ram_cpu)} of RAM ({_gib(node.ram_avail)} available)"
            out.append(Verdict(n.id, kind=VARIANT, reason=why))
        else:
            out.append(Verdict(n.id, kind=GPUS if wish.gpus else MEMORY, reason=_short(wish, node)))
    return out


def _alone(wish: Wish, kind: str) -> str:
    """Why one node may not take the wish at all."""
    return {
        GONE: "the worker is gone",
        DRAINED: "drained for maintenance",
        SELECTOR: f"its labels do not match the selector {_selector(wish)}",
        BACKEND: f"{wish.backend} is not installed there",
        FILES: f"the model's files are not there ({wish.path})",
    }[kind]


def _short(wish: Wish, node: _Node) -> str:
    """What one instance needs beside what ``node`` has available, and by how much it is short."""
    d = wish.demand
    if wish.gpus:
        room = sum(max(0, g.avail - d.vram_fixed) for g in node.gpus if (node.id, g.index) in wish.gpus)
        if room < d.vram_split:
            need = d.vram_fixed + d.vram_split
            return f"needs {_gib(need)} of VRAM on the chosen GPUs: {_gib(d.vram_split - room)} short"
        return f"needs {_gib(d.ram_gpu)} of RAM beside its GPUs ({_gib(node.ram_avail)} available)"
    parts = []
    if d.vram_split and node.gpus:
        need, most = d.vram_fixed + d.vram_split, node.max_gpu()
        parts.append(f"{_gib(need)} of VRAM on one GPU ({_gib(most)} available: {_gib(need - most)} short)")
    parts.append(
        f"{_gib(d.ram_cpu)} of RAM ({_gib(node.ram_avail)} available: {_gib(d.ram_cpu - node.ram_avail)} short)"
    )
    return "needs " + " or ".join(parts)


# -- why not ----------------------------------------------------------------------------------


def _why(wish: Wish, eligible: list[_Node], excluded: dict[str, list[str]], state: dict[str, _Node]) -> str:
    d = wish.demand
    parts: list[str] = []
    if wish.gpus:
        gone = sorted({n for n, _ in wish.gpus if n not in state})
        drained = sorted({n for n, _ in wish.gpus if n in state and state[n].node.drained})
        cpu = sorted({n for n, _ in wish.gpus if n in state and not _gpu_build(wish, state[n].node)})
        if gone:
            parts.append(f"the chosen GPUs' worker {', '.join(gone)} is not in the cluster")
        elif drained:
            parts.append(f"the chosen GPUs' worker {', '.join(drained)} is drained for maintenance")
        elif cpu:
            parts.append(f"the chosen GPUs' worker {', '.join(cpu)} has the CPU build of {wish.backend}")
        else:
            rooms = []
            for node_id, index in wish.gpus:
                g = next((g for g in state[node_id].gpus if g.index == index), None)
                rooms.append(
                    f"{node_id}:{index} " + (f"{g.avail / GiB:.1f} GiB free" if g else "no such GPU")
                )
            parts.append(
                f"needs {_gib(d.vram_fixed + d.vram_split)} of VRAM on the chosen GPUs ({'; '.join(rooms)})"
            )
        return "; ".join(parts)
    if not eligible:
        parts.append("no node" + (" is alive" if not state else " may take it"))
    else:
        needs = []
        top_gpu = max(((g.avail, n.id, g.index) for n in eligible for g in n.gpus), default=None)
        if d.vram_split and top_gpu is not None:
            needs.append(f"{_gib(d.vram_fixed + d.vram_split)} of VRAM on one GPU")
        needs.append(f"{_gib(d.ram_cpu)} of RAM on the CPU")
        top_ram = max((n.ram_avail, n.id) for n in eligible)
        most = []
        if top_gpu is not None:
            most.append(f"{_gib(top_gpu[0])} on {top_gpu[1]}:{top_gpu[2]}")
        most.append(f"{_gib(top_ram[0])} of RAM on {top_ram[1]}")
        parts.append(f"needs {' or '.join(needs)}; the most free: {', '.join(most)}")
    for why, ids in sorted(excluded.items()):
        parts.append(f"{len(ids)} node{'s' if len(ids) > 1 else ''} left out {why}")
    return "; ".join(parts)


def _gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB"
