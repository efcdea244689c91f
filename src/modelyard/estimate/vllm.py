"""Memory a model needs under vLLM, which sizes its KV cache up front:

- weights: as transformers holds them (hf.py), split over the GPUs of tensor / pipeline
  parallelism;
- KV cache: the size given (``kv_cache_memory_bytes``; on the CPU 4 GiB by default), else on a
  GPU all that ``gpu_memory_utilization`` of its memory leaves after the weights. It must hold one
  sequence of the whole context, or vLLM does not start;
- overhead: the server process with torch (RAM), and the CUDA context and graphs on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelyard.catalog.records import Model
from modelyard.estimate import Fit, largest_context
from modelyard.estimate.hf import HFConfig, estimate_tensors
from modelyard.estimate.llama import Breakdown, Estimate
from modelyard.formats import hf

MiB = 1 << 20
SERVER_RAM = 1800 * MiB  # vLLM's API server and engine core with torch: measured on the CPU
GPU_OVERHEAD = 1024 * MiB  # CUDA context, CUDA graphs, sampler buffers


@dataclass(frozen=True)
class VllmConfig:
    n_ctx: int
    precision: str = "auto"
    on_gpu: bool = False
    gpus: int = 1  # tensor x pipeline parallel
    gpu_memory_utilization: float = 0.9
    kv_cache_bytes: int | None = None  # None: what gpu_memory_utilization leaves (GPU only)
    extra_bytes: int = 0  # a LoRA, loaded beside the weights


def fit_vllm(model: Model, cfg: VllmConfig, free_ram: int, free_vram: list[int]) -> Fit:
    shards, _ = hf.read_weights(Path(model.path))

    def one_sequence(n_ctx: int) -> tuple[int, int]:
        """(weights, the KV cache of one sequence of n_ctx tokens)."""
        base = estimate_tensors(
            shards, model.facts, HFConfig(n_ctx=n_ctx, precision=cfg.precision, device="cpu")
        )
        return base.ram.weights + cfg.extra_bytes, base.ram.kv_cache

    def estimate(n_ctx: int) -> tuple[Estimate, bool]:
        weights, kv_min = one_sequence(n_ctx)
        if not cfg.on_gpu:
            kv = cfg.kv_cache_bytes or kv_min
            ram = Breakdown(weights=weights, kv_cache=kv, overhead=SERVER_RAM)
            return Estimate(n_ctx=n_ctx, n_gpu_layers=0, ram=ram), ram.total <= free_ram and kv >= kv_min
        n = max(cfg.gpus, 1)
        per_gpu = [Breakdown(weights=weights // n, overhead=GPU_OVERHEAD) for _ in range(n)]
        usable = [int(f * cfg.gpu_memory_utilization) for f in free_vram[:n]]
        for b, room in zip(per_gpu, usable, strict=False):
            b.kv_cache = cfg.kv_cache_bytes // n if cfg.kv_cache_bytes else max(room - b.total, kv_min // n)
        ok = len(usable) >= n and all(b.total <= room for b, room in zip(per_gpu, usable, strict=False))
        ok = ok and sum(b.kv_cache for b in per_gpu) >= kv_min
        ram = Breakdown(overhead=SERVER_RAM)
        return Estimate(n_ctx=n_ctx, n_gpu_layers=-1, ram=ram, vram=per_gpu), ok and ram.total <= free_ram

    result, fits = estimate(cfg.n_ctx)
    return Fit(
        estimate=result,
        free_ram=free_ram,
        fits=fits,
        max_ctx=largest_context(lambda n: estimate(n)[1], max(cfg.n_ctx, model.context_length or 0)),
        rule_of_thumb=model.size + 2 * 10**9,
    )
