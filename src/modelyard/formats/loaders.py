"""The loaders of the manuals, by name, and why each is offered for a model (the beginner's
guide's words). Which backend takes which model, and how well, each backend says itself
(``Backend.rank``)."""

from __future__ import annotations

from typing import Any

LLAMA_CPP = "llama.cpp"
EXLLAMAV2 = "exllamav2"
TRANSFORMERS = "transformers"
VLLM = "vllm"
SENTENCE_TRANSFORMERS = "sentence-transformers"
DIFFUSERS = "diffusers"
SPANDREL = "spandrel"  # image upscalers
INSIGHTFACE = "insightface"  # face packs
PIPER = "piper"  # Piper voices
FASTER_WHISPER = "faster-whisper"  # Whisper on CTranslate2
EXTERNAL = "external"  # a server that already runs elsewhere
REMOTE = "remote"  # the format of a model that is such a server
# the quantizations transformers runs on gptqmodel's kernels
GPTQMODEL_METHODS = ("gptq", "awq")


def quant_method(fmt: str, facts: dict[str, Any]) -> str | None:
    """How a Hugging Face model's weights are quantized (gptq, awq, exl2, bitsandbytes, fp8, ...),
    from its config; None for full precision and for formats that say it their own way (GGUF)."""
    if fmt in ("gguf", "ggml"):
        return None
    method = facts.get("quant_method")
    return str(method).lower() if method else None


def why(loader: str, fmt: str, quant_method: str | None, category: str | None) -> str:
    """Why ``loader`` is offered for this model, in the beginner's guide's terms."""
    if loader == LLAMA_CPP:
        return "GGUF: runs on the CPU, the GPUs or both (layers offloaded as memory allows)"
    if loader == EXLLAMAV2:
        if quant_method == "gptq":
            return "4-bit GPTQ on NVIDIA GPUs with ExLlamaV2's kernels: the fastest single stream"
        return "EXL2 runs only on ExLlamaV2: NVIDIA GPUs, the fastest single stream"
    if loader == VLLM:
        if quant_method in ("gptq", "awq", "compressed-tensors", "fp8"):
            return f"{quant_method.upper()} kernels with batching for many concurrent requests (GPUs; the CPU build takes few)"
        return "high-concurrency serving with continuous batching (GPUs; a CPU build too)"
    if loader == SENTENCE_TRANSFORMERS:
        return "embedding and rerank models: pooling, normalisation and batching as the model card says"
    if loader == DIFFUSERS:
        return "image pipelines, single-file checkpoints and their LoRAs"
    if loader == TRANSFORMERS:
        if quant_method in GPTQMODEL_METHODS:
            return f"{quant_method.upper()} on gptqmodel's kernels: the CPU too, one request at a time"
        if quant_method == "bitsandbytes":
            return "bitsandbytes 8/4-bit loads through transformers"
        if fmt == "gguf":
            return "GGUF read dequantized, for transformers' samplers, when the model's settings ask for it"
        return "any Hugging Face model, at the precision you choose; the widest support, not the fastest"
    if loader == EXTERNAL:
        return "a server that already runs: modelyard proxies it"
    return loader
