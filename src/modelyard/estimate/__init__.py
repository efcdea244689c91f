"""Memory estimates and fit checks, before anything is loaded."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelyard.catalog.records import Model
from modelyard.errors import Unsupported
from modelyard.estimate import hf as hf_estimate
from modelyard.estimate.llama import Breakdown, Config, Estimate, estimate, max_gpu_layers
from modelyard.formats import hf
from modelyard.formats.gguf import GGUFFile, read_gguf

GiB = 1 << 30


@dataclass
class Fit:
    estimate: Estimate
    free_ram: int
    fits: bool
    max_ctx: int | None  # the largest context that fits the free RAM (None: not even the smallest)
    rule_of_thumb: int  # the beginner's guide: file size + 2 GB
    max_gpu_layers: int | None = None  # the most layers the GPUs' free VRAM takes (None: no GPU)
    # the layers on the GPUs where the configuration says "as many as fit" (None: as it says)
    gpu_layers: int | None = None


def _shards(model: Model) -> list[GGUFFile]:
    if model.format != "gguf":
        raise Unsupported(f"{model.name!r} is a {model.format} model, not GGUF: llama.cpp cannot run it")
    return [_header(Path(f.path)) for f in model.files]


# Where a GGUF file is not on this machine (only a cluster's workers hold it), its header comes
# from a worker that does: the cluster's executor (runtime/cluster.py) sets this.
elsewhere: Callable[[Path], GGUFFile] | None = None


def _header(path: Path) -> GGUFFile:
    """A shard's header, read once while the file stays as it is (a load estimates its model
    several times: its demand, then each placement)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if elsewhere is not None:
            return elsewhere(path)
        return read_gguf(path)  # its own error: not found
    except OSError:
        return read_gguf(path)  # its own error: unreadable
    return _read(path, info.st_ino, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _read(path: Path, _inode: int, _size: int, _mtime_ns: int) -> GGUFFile:
    return read_gguf(path)


def fit_gguf(model: Model, cfg: Config, free_ram: int, free_vram: list[int] | None = None) -> Fit:
    """The estimate for ``cfg``, whether it fits ``free_ram`` (and each GPU's ``free_vram``),
    the largest context that fits, and the most GPU layers that do; with ``n_gpu_layers`` -1,
    the estimate is for that many on the GPUs and the rest on the CPU."""
    shards = _shards(model)
    most = max_gpu_layers(shards, cfg, free_vram) if free_vram else None
    gpu_layers = None
    if cfg.n_gpu_layers < 0 and most is not None:  # as many as fit: the rest runs on the CPU
        gpu_layers = most
        cfg = Config(**{**cfg.__dict__, "n_gpu_layers": most})
    result = estimate(shards, cfg)
    vram_ok = all(v.total <= free for v, free in zip(result.vram, free_vram or [], strict=False))
    max_ctx = largest_context(
        lambda n_ctx: estimate(shards, _with_ctx(cfg, n_ctx)).ram.total <= free_ram,
        max(model.context_length or 0, cfg.n_ctx),
    )
    return Fit(
        estimate=result,
        free_ram=free_ram,
        fits=result.ram.total <= free_ram and vram_ok,
        max_ctx=max_ctx,
        rule_of_thumb=model.size + 2 * 10**9,
        max_gpu_layers=most,
        gpu_layers=gpu_layers,
    )


def largest_context(fits: Callable[[int], bool], upper: int) -> int | None:
    """The largest n_ctx, in steps of 256 up to ``upper``, for which ``fits`` holds (it grows
    with n_ctx); None when not even 256 fits."""
    lo, hi = 1, max(1, upper // 256)
    if not fits(256):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid * 256):
            lo = mid
        else:
            hi = mid - 1
    return lo * 256


def _with_ctx(cfg: Config, n_ctx: int) -> Config:
    return Config(**{**cfg.__dict__, "n_ctx": n_ctx})


def fit_folder(
    model: Model,
    free_ram: int,
    free_vram: list[int],
    *,
    n_ctx: int = 0,
    precision: str = "auto",
    device: str = "auto",
    batch_size: int = 1,
    quantization: str = "none",
    kv_bytes: float = 0.0,
    extra_bytes: int = 0,
    process_ram: int = 0,
) -> Fit:
    """The same for a safetensors / Hugging Face folder under a transformers-style engine
    (``kv_bytes``: bytes per cached value where the cache has its own type; ``extra_bytes``: what
    loads beside the weights, a draft model; ``process_ram``: what the engine's libraries add)."""
    folder = Path(model.path)
    if model.format != "safetensors" or not folder.is_dir():
        raise Unsupported(f"no memory estimate for {model.name!r} ({model.format})")
    shards, _ = hf.read_weights(folder)
    if device == "auto":
        device = "cuda" if free_vram else "cpu"

    def cfg(n_ctx: int) -> hf_estimate.HFConfig:
        return hf_estimate.HFConfig(
            n_ctx=n_ctx,
            precision=precision,
            device=device,
            batch_size=batch_size,
            quantization=quantization,
            kv_bytes=kv_bytes,
            extra_bytes=extra_bytes,
            process_ram=process_ram,
        )

    def fits(e: Estimate) -> bool:
        vram_ok = all(v.total <= f for v, f in zip(e.vram, free_vram, strict=False)) and (
            not e.vram or bool(free_vram)
        )
        return e.ram.total <= free_ram and vram_ok

    n_ctx = n_ctx or model.context_length or 2048
    result = hf_estimate.estimate_tensors(shards, model.facts, cfg(n_ctx))
    max_ctx = largest_context(
        lambda n: fits(hf_estimate.estimate_tensors(shards, model.facts, cfg(n))),
        max(n_ctx, model.context_length or 0),
    )
    return Fit(
        estimate=result,
        free_ram=free_ram,
        fits=fits(result),
        max_ctx=max_ctx,
        rule_of_thumb=model.size + 2 * 10**9,
    )


def fit_files(
    model: Model, free_ram: int, free_vram: list[int], *, gpu: bool, working: int, overhead: int
) -> Fit:
    """The estimate for an engine that holds its files' weights as they are (an upscaler, a face
    pack, a Piper voice, a CTranslate2 model) and ``working`` bytes besides while it runs (its
    activations), on the first GPU when ``gpu``, else in RAM; ``overhead`` is the process's own."""
    weights = model.size
    if gpu and free_vram:
        device = Breakdown(weights=weights, compute=working, overhead=hf_estimate.CUDA_CONTEXT)
        result = Estimate(n_ctx=0, n_gpu_layers=0, ram=Breakdown(overhead=overhead), vram=[device])
        fits = result.ram.total <= free_ram and device.total <= free_vram[0]
    else:
        result = Estimate(
            n_ctx=0, n_gpu_layers=0, ram=Breakdown(weights=weights, compute=working, overhead=overhead)
        )
        fits = result.ram.total <= free_ram
    return Fit(estimate=result, free_ram=free_ram, fits=fits, max_ctx=None, rule_of_thumb=weights + 2 * 10**9)
