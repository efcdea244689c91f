"""Which loaders take which format and quantization (the beginner's guide): GGUF -> llama.cpp;
EXL2 -> ExLlamaV2; GPTQ -> vLLM, ExLlamaV2, transformers; AWQ -> vLLM, transformers; full precision -> transformers, vLLM."""

from __future__ import annotations

from modelyard.categories import DIFFUSION, Category
from modelyard.errors import IncompatibleLoader
from modelyard.formats.inspection import ADAPTER, Inspection

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


def compatible_loaders(
    fmt: str, category: Category | None, quant_method: str | None, *, kind: str = "model"
) -> list[str]:
    """The loaders that can run this model, best first."""
    if fmt == "gguf":
        return [DIFFUSERS] if category in DIFFUSION else [LLAMA_CPP]
    if fmt == "ggml":
        return []  # llama.cpp dropped GGML; the file must be converted
    if kind == ADAPTER:
        return [DIFFUSERS] if category in DIFFUSION else [TRANSFORMERS, VLLM]
    if quant_method == "exl2":
        return [EXLLAMAV2]
    if quant_method == "gptq":
        return [VLLM, EXLLAMAV2, TRANSFORMERS]
    if quant_method == "awq":
        return [VLLM, TRANSFORMERS]
    if quant_method == "bitsandbytes":
        return [TRANSFORMERS, VLLM]
    if quant_method is not None:
        return [VLLM]
    if category in (Category.EMBEDDING, Category.RERANK):
        return [SENTENCE_TRANSFORMERS, TRANSFORMERS]
    if category is Category.UPSCALE:
        return [SPANDREL]
    if category is Category.FACE:
        return [INSIGHTFACE]
    if fmt == "onnx" and category is Category.TEXT_TO_SPEECH:
        return [PIPER]
    if fmt == "ctranslate2":
        return [FASTER_WHISPER]
    if category in DIFFUSION or fmt == "diffusers":
        return [DIFFUSERS]
    return [TRANSFORMERS, VLLM]


def loaders_of(insp: Inspection) -> list[str]:
    return compatible_loaders(insp.format, insp.category, insp.facts.get("quant_method"), kind=insp.kind)


def require_loader(name: str, fmt: str, quantization: str | None, loaders: list[str], loader: str) -> None:
    """Refuse a loader that cannot take this model's format or quantization."""
    if loader not in loaders:
        what = f"{fmt} {quantization}" if quantization else fmt
        raise IncompatibleLoader(
            f"{loader} cannot load {name!r} ({what})",
            hint=f"use {' or '.join(loaders)}" if loaders else "convert the model to GGUF or safetensors",
        )


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
        return "any Hugging Face model, at the precision you choose; the widest support, not the fastest"
    if loader == EXTERNAL:
        return "a server that already runs: modelyard proxies it"
    return loader
