"""Where new instances go, and whether they fit: the backend's estimate against what each node
has free. Pure functions of their arguments (no I/O): the node inventory comes from the executor.

Today there is one node; replicas share its free memory. A load that will not fit is refused with
WontFit, which gives the numbers and what to try instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelyard.backends.base import Backend, Placement
from modelyard.catalog.records import Adapter, Model
from modelyard.errors import Unsupported, WontFit
from modelyard.estimate import Fit, GiB
from modelyard.runtime.executor import Node


@dataclass(frozen=True)
class Budget:
    """What one of ``replicas`` new instances may use on a node."""

    ram: int
    vram: list[int]


def budget(node: Node, replicas: int, freed: int = 0) -> Budget:
    """A node's free memory (plus ``freed``, what the load stops first) shared by ``replicas``."""
    n = max(1, replicas)
    return Budget(ram=(node.ram_free + freed) // n, vram=[g.vram_free // n for g in node.gpus])


def estimate(backend: Backend, model: Model, options: Any, adapter: Adapter | None, node: Node) -> Fit:
    """The backend's estimate of one instance on ``node``; Unsupported when it has none."""
    found = backend.fit(model, options, adapter, node.ram_free, [g.vram_free for g in node.gpus])
    if found is None:
        raise Unsupported(f"no memory estimate for {model.name!r} ({model.format}) on {backend.name}")
    return found


def place(
    backend: Backend,
    model: Model,
    options: Any,
    adapter: Adapter | None,
    replicas: int,
    nodes: list[Node],
    *,
    freed: int = 0,
) -> list[Placement]:
    """Placements for ``replicas`` new instances; WontFit when they do not fit. A backend with no
    estimate for the model places it without one (the engine's own error will say)."""
    if replicas <= 0:
        return []
    node = nodes[0]
    share = budget(node, replicas, freed)
    report = backend.fit(model, options, adapter, share.ram, share.vram)
    if report is not None and not report.fits:
        raise wont_fit(model, report, replicas, node.ram_free + freed, [g.vram_free for g in node.gpus])
    gpus = tuple(g.index for g in node.gpus)
    layers = report.gpu_layers if report is not None else None  # "as many as fit", per replica
    return [Placement(node=node.id, gpus=gpus, gpu_layers=layers) for _ in range(replicas)]


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
        f"KV cache {e.ram.kv_cache / GiB:.2f}, compute and overhead "
        f"{(e.ram.compute + e.ram.overhead) / GiB:.2f}) with {free_ram / GiB:.2f} GiB free"
    ]
    needs += [
        f"GPU {i}: {v.total * replicas / GiB:.2f} GiB with {f / GiB:.2f} GiB free"
        for i, (v, f) in enumerate(zip(e.vram, free_vram, strict=False))
    ]
    return WontFit(f"{model.name!r} needs " + "; ".join(needs), hint="try " + ", or ".join(options))
