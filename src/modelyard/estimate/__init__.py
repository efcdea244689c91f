"""Memory estimates and fit checks, before anything is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.catalog.records import Model
from modelyard.errors import Unsupported
from modelyard.estimate.llama import Config, Estimate, estimate
from modelyard.formats.gguf import GGUFFile, read_gguf

GiB = 1 << 30


@dataclass
class Fit:
    estimate: Estimate
    free_ram: int
    fits: bool
    max_ctx: int | None  # the largest context that fits the free RAM (None: not even the smallest)
    rule_of_thumb: int  # the beginner's guide: file size + 2 GB


def _shards(model: Model) -> list[GGUFFile]:
    if model.format != "gguf":
        raise Unsupported(
            f"memory estimates cover GGUF models so far; {model.name!r} is {model.format}",
            hint="safetensors estimates arrive with the Python engines",
        )
    return [read_gguf(Path(f.path)) for f in model.files]


def config_of(model: Model, options: dict[str, Any], runtime: str, n_gpus: int = 0) -> Config:
    extra = sum(c.size for c in model.components if c.role == "mmproj")
    return Config(
        n_ctx=int(options.get("n_ctx") or model.context_length or 4096),
        parallel=int(options.get("parallel") or 1),
        cache_type_k=str(options.get("cache_type_k") or "f16"),
        cache_type_v=str(options.get("cache_type_v") or "f16"),
        n_gpu_layers=int(options.get("n_gpu_layers", -1)),
        tensor_split=tuple(options.get("tensor_split") or ()),
        n_gpus=n_gpus,
        runtime=runtime,
        extra_bytes=extra,
    )


def fit(model: Model, cfg: Config, free_ram: int) -> Fit:
    """The estimate for ``cfg``, whether it fits ``free_ram``, and the largest context that does."""
    shards = _shards(model)
    result = estimate(shards, cfg)
    trained = model.context_length or cfg.n_ctx
    max_ctx: int | None = None
    lo, hi = 256, max(trained, cfg.n_ctx)
    if estimate(shards, _with_ctx(cfg, lo)).ram.total <= free_ram:
        while lo < hi:  # the largest n_ctx (a multiple of 256) whose estimate fits
            mid = (lo + hi + 1) // 2 // 256 * 256 or 256
            if mid <= lo:
                break
            if estimate(shards, _with_ctx(cfg, mid)).ram.total <= free_ram:
                lo = mid
            else:
                hi = mid - 1
        max_ctx = lo
    return Fit(
        estimate=result,
        free_ram=free_ram,
        fits=result.ram.total <= free_ram,
        max_ctx=max_ctx,
        rule_of_thumb=model.size + 2 * 10**9,
    )


def _with_ctx(cfg: Config, n_ctx: int) -> Config:
    return Config(**{**cfg.__dict__, "n_ctx": n_ctx})
