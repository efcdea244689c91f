"""Memory a GGUF model needs under llama.cpp: weights, KV cache, compute buffers and overhead, in
RAM and on each GPU, for a configuration. Built from what llama.cpp allocates:

- weights: every tensor's bytes; the layers offloaded to GPUs (the last ``n_gpu_layers`` blocks,
  plus the output layer when all blocks are offloaded) go to VRAM, split by ``tensor_split``;
- KV cache: per layer, cells x KV heads x (key + value length) x the cache type's size. Global
  layers hold ``n_ctx`` cells; sliding-window layers hold min(n_ctx per sequence, window +
  ubatch) per sequence, rounded up to 256 (llama-server), or ``n_ctx`` (``swa_full``);
- compute: the graph's activations for one ubatch, n_ubatch x (4 n_embd + 3 n_ff) floats, plus
  the logits row per sequence;
- overhead: the engine's own code and heap, and the vocabulary's tables (~120 B a token);
- an engine that keeps every position's logits (llama-cpp-python's ``logits_all``, for prompt
  logprobs) also computes logits for the whole batch and fills an n_ctx x n_vocab score array.

The engine's own ways come in as flags (``swa_full``, ``all_logits``, ``engine_overhead``): the
backends set them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelyard.formats.gguf import GGUFFile

MiB = 1 << 20
CACHE_BYTES = {
    "f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "q4_1": 20 / 32,
    "iq4_nl": 18 / 32, "q5_0": 22 / 32, "q5_1": 24 / 32,
}  # fmt: skip
# Architectures whose sliding-window layers follow a fixed pattern: every Nth layer is global.
SWA_PATTERN = {"gemma2": 2, "gemma3": 6, "gemma3n": 5, "cohere2": 4, "gpt-oss": 2}
ENGINE_OVERHEAD = 15 * MiB  # llama-server's code and heap
VOCAB_BYTES_PER_TOKEN = 120
N_UBATCH = 512


@dataclass
class Breakdown:
    weights: int = 0
    kv_cache: int = 0
    compute: int = 0
    overhead: int = 0
    prompt_cache: int = 0  # llama-server's reserve for earlier prompts' KV states, filled as they are cached

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.overhead + self.prompt_cache


@dataclass
class Estimate:
    n_ctx: int
    n_gpu_layers: int  # layers actually offloaded
    ram: Breakdown
    vram: list[Breakdown] = field(default_factory=list)  # one per GPU


@dataclass(frozen=True)
class Config:
    n_ctx: int
    parallel: int = 1
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    n_gpu_layers: int = 0  # -1: all
    tensor_split: tuple[float, ...] = ()
    n_gpus: int = 0
    extra_bytes: int = 0  # mmproj, LoRA: loaded whole beside the model
    prompt_cache_bytes: int = 0  # llama-server's prompt cache in RAM (--cache-ram): prompts kept
    swa_full: bool = False  # full-size caches on sliding-window layers too
    all_logits: bool = False  # every position's logits are kept (an n_ctx x n_vocab array)
    engine_overhead: int = ENGINE_OVERHEAD


def _per_layer(value: int | tuple[int, ...] | None, n_layer: int, default: int) -> list[int]:
    if isinstance(value, tuple):
        return [int(v) for v in value[:n_layer]] + [default] * max(0, n_layer - len(value))
    return [int(value if value is not None else default)] * n_layer


def _swa_layers(g: GGUFFile, n_layer: int) -> list[bool]:
    window = g.arch_int("attention.sliding_window")
    if not window:
        return [False] * n_layer
    pattern = g.metadata.get(f"{g.architecture}.attention.sliding_window_pattern")
    if isinstance(pattern, tuple) and len(pattern) >= n_layer:
        return [bool(p) for p in pattern[:n_layer]]
    every = SWA_PATTERN.get(g.architecture)
    if every is None:
        return [True] * n_layer  # a window on every layer (Mistral-style)
    return [(i + 1) % every != 0 for i in range(n_layer)]


def kv_cells(g: GGUFFile, n_layer: int, n_ctx: int, parallel: int, swa_full: bool) -> list[int]:
    window = g.arch_int("attention.sliding_window") or 0
    per_seq = max(1, n_ctx // parallel)
    swa_cells = parallel * -(-min(per_seq, window + N_UBATCH) // 256) * 256
    return [n_ctx if (not swa or swa_full) else min(n_ctx, swa_cells) for swa in _swa_layers(g, n_layer)]


def estimate(shards: list[GGUFFile], cfg: Config) -> Estimate:
    """The memory ``shards`` (one GGUF model, maybe split) need with ``cfg``."""
    g = shards[0]
    facts = g.facts()
    n_layer = int(facts.get("block_count") or 0)
    n_embd = int(facts.get("embedding_length") or 0)
    head_kv = _per_layer(
        facts.get("head_count_kv"),
        n_layer,
        int(facts.get("head_count") or 1) if isinstance(facts.get("head_count"), int) else 1,
    )
    k_len = int(facts.get("key_length") or 0)
    v_len = int(facts.get("value_length") or k_len)
    ff = facts.get("feed_forward_length")
    n_ff = max(ff) if isinstance(ff, tuple) else int(ff or 4 * n_embd)
    n_vocab = int(facts.get("vocab_size") or 0)

    offload = n_layer + 1 if cfg.n_gpu_layers < 0 else min(cfg.n_gpu_layers, n_layer + 1)
    if cfg.n_gpus == 0:
        offload = 0
    first_gpu_layer = n_layer - min(offload, n_layer)
    split = list(cfg.tensor_split) or [1.0] * cfg.n_gpus
    split = (split + [0.0] * cfg.n_gpus)[: cfg.n_gpus]
    gpus = [Breakdown() for _ in range(cfg.n_gpus)]

    def gpu_for(layer: int) -> Breakdown:
        """llama.cpp hands out the offloaded layers to GPUs in proportion to tensor_split."""
        position = (layer - first_gpu_layer) / max(1, min(offload, n_layer))
        total = sum(split) or 1.0
        acc = 0.0
        for i, share in enumerate(split):
            acc += share / total
            if position < acc:
                return gpus[i]
        return gpus[-1]

    ram = Breakdown()
    for shard in shards:
        if cfg.n_gpus == 0:  # every tensor in RAM
            ram.weights += sum(nbytes for _, nbytes, _ in shard.layout)
            continue
        for layer, nbytes, token_embd in shard.layout:
            on_gpu = (layer is not None and layer >= first_gpu_layer and offload > 0) or (
                layer is None and offload > n_layer and not token_embd
            )
            if on_gpu:
                gpu_for(layer if layer is not None else n_layer - 1).weights += nbytes
            else:
                ram.weights += nbytes

    cells = kv_cells(g, n_layer, cfg.n_ctx, cfg.parallel, swa_full=cfg.swa_full)
    per_cell = CACHE_BYTES[cfg.cache_type_k] * k_len + CACHE_BYTES[cfg.cache_type_v] * v_len
    for layer in range(n_layer):
        kv = int(cells[layer] * head_kv[layer] * per_cell)
        if cfg.n_gpus and offload > 0 and layer >= first_gpu_layer:
            gpu_for(layer).kv_cache += kv
        else:
            ram.kv_cache += kv

    compute = N_UBATCH * 4 * (4 * n_embd + 3 * n_ff)
    logits = n_vocab * 4 * cfg.parallel
    if cfg.all_logits:
        # logits for the whole batch, and an n_ctx x n_vocab float32 score array besides: on big
        # vocabularies that dwarfs the model.
        compute += N_UBATCH * n_vocab * 4
        logits += cfg.n_ctx * n_vocab * 4
    if cfg.n_gpus and offload > 0:
        for gpu in gpus:
            gpu.compute += compute
        ram.compute += logits
    else:
        ram.compute += compute + logits
    ram.overhead = cfg.engine_overhead + VOCAB_BYTES_PER_TOKEN * n_vocab
    ram.weights += cfg.extra_bytes
    ram.prompt_cache = cfg.prompt_cache_bytes  # the KV states of earlier prompts, kept in RAM
    return Estimate(n_ctx=cfg.n_ctx, n_gpu_layers=offload, ram=ram, vram=gpus)


def max_gpu_layers(shards: list[GGUFFile], cfg: Config, free_vram: list[int]) -> int:
    """The most layers (0 .. block_count + 1, the last meaning the output layer too) that fit the
    free VRAM of every GPU, with ``cfg``'s split."""
    n_layer = int(shards[0].facts().get("block_count") or 0)
    gpus = len(free_vram)
    best = 0
    for layers in range(n_layer + 1, 0, -1):
        trial = Config(**{**cfg.__dict__, "n_gpu_layers": layers, "n_gpus": gpus})
        if all(v.total <= free for v, free in zip(estimate(shards, trial).vram, free_vram, strict=True)):
            best = layers
            break
    return best
