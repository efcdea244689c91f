"""Memory a safetensors / Hugging Face model needs under transformers-style engines, from the
headers' dtypes and parameter counts, the quantization config, the chosen precision and device.

- weights: each tensor at the precision it will have in memory: the stored dtype (``auto``), or
  the chosen one for floating-point tensors; GPTQ / AWQ / EXL2 weights stay packed as stored;
  bitsandbytes quantizes the 2-D linear weights to 8 or 4 bits (+ a scale per 64 values);
- KV cache: 2 x layers x KV heads x head dim x n_ctx x batch x the compute dtype's size (or the
  cache's own: exllamav2's Q8 / Q4 caches);
- activations: batch x n_ctx x (hidden + intermediate) floats, one layer at a time;
- overhead: the Python process with torch (RAM), what the engine's libraries add to it (gptqmodel's
  kernels for GPTQ / AWQ), and the CUDA context on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelyard.estimate.llama import Breakdown, Estimate
from modelyard.formats import hf
from modelyard.formats.safetensors import DTYPE_BITS, SafetensorsFile

MiB = 1 << 20
PRECISION_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
DTYPE_PRECISION = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
TORCH_RAM = 400 * MiB  # python + torch + transformers, measured order of magnitude
CUDA_CONTEXT = 500 * MiB
GPTQMODEL_RAM = 250 * MiB  # importing gptqmodel, for GPTQ / AWQ in transformers (measured 247 MiB)


@dataclass(frozen=True)
class HFConfig:
    n_ctx: int
    precision: str = "auto"
    device: str = "cpu"  # cpu or cuda
    batch_size: int = 1
    quantization: str = "none"  # bitsandbytes at load: int8, int4, nf4
    kv_bytes: float = 0.0  # bytes per cached key or value; 0: the compute dtype's
    extra_bytes: int = 0  # loaded beside the weights: a draft model
    process_ram: int = 0  # what the engine's libraries add to its process (GPTQMODEL_RAM)


def estimate_folder(folder: Path, facts: dict[str, object], cfg: HFConfig) -> Estimate:
    shards, _ = hf.read_weights(folder)
    if not shards:
        raise ValueError("no safetensors weights")
    return estimate_tensors(shards, facts, cfg)


def estimate_tensors(shards: list[SafetensorsFile], facts: dict[str, object], cfg: HFConfig) -> Estimate:
    method = facts.get("quant_method")
    bnb_bits = 8 if cfg.quantization == "int8" else 4 if cfg.quantization in ("int4", "nf4") else None
    if method == "bitsandbytes":
        bnb_bits = int(facts.get("bits") or 4)  # type: ignore[call-overload]
    weights = 0
    stored_float = None
    for shard in shards:
        for t in shard.tensors.values():
            stored = DTYPE_BITS[t.dtype] / 8
            is_float = t.dtype in DTYPE_PRECISION
            if is_float and stored_float is None:
                stored_float = t.dtype
            if method in ("gptq", "awq", "exl2") or not is_float:
                weights += int(t.n_elements * stored)  # packed as stored
            elif (
                bnb_bits
                and len(t.shape) == 2
                and not t.name.endswith(("embed_tokens.weight", "lm_head.weight"))
            ):
                weights += t.n_elements * bnb_bits // 8 + t.n_elements // 64 * 4
            else:
                precision = cfg.precision if cfg.precision != "auto" else DTYPE_PRECISION[t.dtype]
                weights += t.n_elements * PRECISION_BYTES[precision]
    compute_precision = (
        cfg.precision if cfg.precision != "auto" else DTYPE_PRECISION.get(stored_float or "F16", "float16")
    )
    return estimate_weights(weights + cfg.extra_bytes, compute_precision, facts, cfg)


def estimate_weights(
    weights: int, compute_precision: str, facts: dict[str, object], cfg: HFConfig
) -> Estimate:
    """The estimate for ``weights`` bytes of weights computing in ``compute_precision``, with the
    KV cache and activations from the facts (block_count, embedding_length, head counts)."""
    act = PRECISION_BYTES[compute_precision]

    def num(key: str) -> int:
        value = facts.get(key)
        return int(value) if isinstance(value, int) else 0

    layers, hidden = num("block_count"), num("embedding_length")
    heads, kv_heads = num("head_count"), num("head_count_kv") or num("head_count")
    head_dim = num("key_length") or (hidden // heads if heads else 0)
    kv = int(2 * layers * kv_heads * head_dim * cfg.n_ctx * cfg.batch_size * (cfg.kv_bytes or act))
    activations = cfg.batch_size * cfg.n_ctx * (hidden + 4 * hidden) * act
    on_gpu = cfg.device in ("cuda", "auto-cuda")
    device = Breakdown(weights=weights, kv_cache=kv, compute=activations)
    if on_gpu:
        device.overhead = CUDA_CONTEXT
        return Estimate(
            n_ctx=cfg.n_ctx,
            n_gpu_layers=layers,
            ram=Breakdown(overhead=TORCH_RAM + cfg.process_ram),
            vram=[device],
        )
    device.overhead = TORCH_RAM + cfg.process_ram
    return Estimate(n_ctx=cfg.n_ctx, n_gpu_layers=0, ram=device, vram=[])
