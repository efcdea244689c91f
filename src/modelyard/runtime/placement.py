"""Where new instances go, and whether they fit: the backend's estimate, turned into a Demand,
given to the scheduler with the deployment's scheduling and what each node has free. The
estimates read the model's files; the scheduler itself is a pure function (scheduler.py).

A load that will not fit is refused with WontFit, which gives the numbers and what to try instead;
on a cluster, where workers come and go, the instances that fit start and the rest wait (pending).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from modelyard.backends.base import AnyBackend, Placement
from modelyard.catalog.records import GPU_REF, Adapter, Model, Scheduling
from modelyard.errors import InvalidSettings, Unsupported, WontFit
from modelyard.estimate import Fit, GiB
from modelyard.runtime.executor import Claim, Node
from modelyard.runtime.scheduler import POLICIES, Decision, Demand, Held, Verdict, Wish, schedule, verdicts

ROOMY = 1 << 50  # memory no estimate reaches: what the model needs when nothing limits it


@dataclass(frozen=True)
class Spot:
    """Where one new instance goes, and the memory it claims there."""

    placement: Placement
    claims: tuple[Claim, ...]


@dataclass(frozen=True)
class Budget:
    """What one of ``replicas`` new instances may use on a node."""

    ram: int
    vram: list[int]


def budget(node: Node, replicas: int) -> Budget:
    """A node's free memory shared by ``replicas``."""
    n = max(1, replicas)
    return Budget(ram=node.ram_free // n, vram=[g.vram_free // n for g in node.gpus])


def estimate(backend: AnyBackend, model: Model, options: Any, adapter: Adapter | None, node: Node) -> Fit:
    """The backend's estimate of one instance on ``node``; Unsupported when it has none."""
    found = backend.fit(model, options, adapter, node.ram_free, [g.vram_free for g in node.gpus])
    if found is None:
        raise Unsupported(f"no memory estimate for {model.name!r} ({model.format}) on {backend.name}")
    return found


def demand(backend: AnyBackend, model: Model, options: Any, adapter: Adapter | None) -> Demand:
    """What one instance needs on the CPU alone and with every layer on GPUs, from the backend's
    estimate (with no limit on memory)."""
    cpu = backend.fit(model, options, adapter, ROOMY, [])
    if cpu is None:
        return Demand(0, estimated=False)
    gpu = backend.fit(model, options, adapter, ROOMY, [ROOMY])
    vram = gpu.estimate.vram[0] if gpu is not None and gpu.estimate.vram else None
    if gpu is None or vram is None or not vram.total:
        return Demand(cpu.estimate.ram.total, distributable=backend.distributable)
    return Demand(
        ram_cpu=cpu.estimate.ram.total,
        ram_gpu=gpu.estimate.ram.total,
        vram_fixed=vram.compute + vram.overhead,
        vram_split=vram.weights + vram.kv_cache,
        layers=gpu.gpu_layers or 0,  # set only where the options say "as many as fit"
        distributable=backend.distributable,
    )


def files_of(model: Model) -> list[str]:
    """The paths a node must have to run ``model`` (none for a server that already runs)."""
    return [model.path] if os.path.isabs(model.path) else []


def _gpu(item: str) -> tuple[str | None, int]:
    """A chosen GPU as (worker or None, index); InvalidSettings when it is none."""
    found = GPU_REF.match(item)
    if found is None:
        raise InvalidSettings(f"{item!r} is not a GPU", hint="write WORKER:INDEX, e.g. w1:0")
    return found["node"], int(found["index"])


def chosen_gpus(scheduling: Scheduling, nodes: Sequence[Node]) -> tuple[tuple[str, int], ...]:
    """The deployment's chosen GPUs as (node, index); a bare index names the only node's GPU."""
    out = []
    for item in scheduling.gpus:
        node, index = _gpu(item)
        if node is None:
            if len(nodes) != 1:
                raise InvalidSettings(f"GPU {item!r}: which worker?", hint="write WORKER:INDEX, e.g. w1:0")
            node = nodes[0].id
        out.append((node, index))
    return tuple(out)


def check(scheduling: Scheduling) -> None:
    """Refuse a scheduling that cannot mean anything."""
    if scheduling.policy not in POLICIES:
        raise InvalidSettings(f"no placement {scheduling.policy!r}", hint="spread or binpack")
    for item in scheduling.gpus:
        _gpu(item)


def place(
    backend: AnyBackend,
    model: Model,
    options: Any,
    adapter: Adapter | None,
    replicas: int,
    nodes: Sequence[Node],
    *,
    scheduling: Scheduling | None = None,
    held: Sequence[Held] = (),
    freed: dict[str, int] | None = None,
) -> list[Spot]:
    """Spots for ``replicas`` new instances of ``model`` beside the ``held`` ones (its own
    included), with ``freed`` bytes per node of what the load stops first counted as free;
    WontFit when they do not all fit."""
    spots, short = place_some(
        backend, model, options, adapter, replicas, nodes, scheduling=scheduling, held=held, freed=freed
    )
    if short is not None:
        raise short
    return spots


def place_some(
    backend: AnyBackend,
    model: Model,
    options: Any,
    adapter: Adapter | None,
    replicas: int,
    nodes: Sequence[Node],
    *,
    scheduling: Scheduling | None = None,
    held: Sequence[Held] = (),
    freed: dict[str, int] | None = None,
) -> tuple[list[Spot], WontFit | None]:
    """As ``place``, but the spots of those that fit, and why the others do not (None: all fit)."""
    if replicas <= 0:
        return [], None
    scheduling = scheduling or Scheduling()
    if freed:
        nodes = [replace(n, ram_free=n.ram_free + freed.get(n.id, 0)) for n in nodes]
    own = sum(1 for h in held if h.wish == model.name)
    wish = _wish(backend, model, options, adapter, own + replicas, nodes, scheduling)
    plan = schedule([wish], held, nodes)
    short = None
    if plan.pending:
        short = _refusal(backend, model, options, adapter, replicas, nodes, plan.pending[0].reason, wish)
    by_id = {n.id: n for n in nodes}
    spots = [
        Spot(_placement(d, backend, model, options, adapter, by_id[d.node]), d.claims) for d in plan.decisions
    ]
    return spots, short


def where_it_fits(
    backend: AnyBackend,
    model: Model,
    options: Any,
    adapter: Adapter | None,
    nodes: Sequence[Node],
    *,
    scheduling: Scheduling,
    held: Sequence[Held] = (),
) -> list[Verdict]:
    """For each node, whether an instance of ``model`` fits there beside the ``held`` ones, and
    why not: the scheduler's own check, node by node."""
    wish = _wish(backend, model, options, adapter, 1, nodes, scheduling)
    return verdicts(wish, held, nodes)


def _wish(
    backend: AnyBackend,
    model: Model,
    options: Any,
    adapter: Adapter | None,
    replicas: int,
    nodes: Sequence[Node],
    scheduling: Scheduling,
) -> Wish:
    return Wish(
        model.name,
        replicas,
        demand(backend, model, options, adapter),
        scheduling.policy,
        dict(scheduling.selector),
        chosen_gpus(scheduling, nodes),
        scheduling.cpu_offload,
        scheduling.distributed,
        backend.name,
        (files_of(model) or [""])[0],
    )


def _placement(
    d: Decision, backend: AnyBackend, model: Model, options: Any, adapter: Adapter | None, node: Node
) -> Placement:
    layers = d.gpu_layers
    if d.way == "offload":  # the estimate's own count for these GPUs, not the scheduler's linear one
        room = dict(d.claims[0].vram)
        found = backend.fit(model, options, adapter, ROOMY, [room[g] for g in d.gpus])
        layers = found.gpu_layers if found is not None and found.gpu_layers else layers
    elif d.way == "cpu" and not node.gpus:
        layers = None  # nothing to keep off: the engine's own default
    return Placement(d.node, d.gpus, layers, d.tensor_split, d.peers)


def _refusal(
    backend: AnyBackend,
    model: Model,
    options: Any,
    adapter: Adapter | None,
    replicas: int,
    nodes: Sequence[Node],
    reason: str,
    wish: Wish,
) -> WontFit:
    """Why the instances do not fit: on one machine with nothing chosen, the backend's own
    account (what it needs, and the context or layers that would fit); else the scheduler's."""
    if len(nodes) == 1 and not wish.gpus and not wish.selector:
        node = nodes[0]
        share = budget(node, replicas)
        report = backend.fit(model, options, adapter, share.ram, share.vram)
        if report is not None and not report.fits:
            return wont_fit(model, report, replicas, node.ram_free, [g.vram_free for g in node.gpus])
    return WontFit(
        f"{model.name!r} does not fit: {reason}",
        hint="change where it may go (placement, selector, GPUs), free memory, or try with `--force`",
    )


def wont_fit(model: Model, report: Fit, replicas: int, free_ram: int, free_vram: list[int]) -> WontFit:
    e = report.estimate
    options = []
    if report.max_ctx and report.max_ctx < e.n_ctx:
        options.append(f"a smaller context (n_ctx {report.max_ctx} fits)")
    layers = e.n_gpu_layers
    if report.max_gpu_layers is not None and report.max_gpu_layers < layers:
        options.append(f"fewer GPU layers (n_gpu_layers {report.max_gpu_layers} fits)")
    options += ["a smaller quantization", "`modelyard load --force` to try anyway"]
    needs = [
        f"{e.ram.total * replicas / GiB:.2f} GiB of RAM (weights {e.ram.weights / GiB:.2f}, "
        f"KV cache {e.ram.kv_cache / GiB:.2f}, compute and overhead {(e.ram.compute + e.ram.overhead) / GiB:.2f}"
        + (f", prompt cache {e.ram.prompt_cache / GiB:.2f}" if e.ram.prompt_cache else "")
        + f") with {free_ram / GiB:.2f} GiB free"
    ]
    needs += [
        f"GPU {i}: {v.total * replicas / GiB:.2f} GiB with {f / GiB:.2f} GiB free"
        for i, (v, f) in enumerate(zip(e.vram, free_vram, strict=False))
    ]
    return WontFit(f"{model.name!r} needs " + "; ".join(needs), hint="try " + ", or ".join(options))
