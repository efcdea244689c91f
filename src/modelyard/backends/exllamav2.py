"""ExLlamaV2: EXL2 and GPTQ chat models on NVIDIA GPUs, the fastest single stream. Its engine is
modelyard's runner (task ``exl2``) with exllamav2's dynamic generator, in the exllamav2
environment (`modelyard backends install exllamav2`, CUDA only). On a machine without an NVIDIA
GPU it is not available at all: a load fails at once, saying so."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelyard.backends import environments
from modelyard.backends.runner import RunnerBackend
from modelyard.catalog.records import Adapter, Model
from modelyard.errors import EngineUnavailable, Unsupported
from modelyard.estimate import Fit, fit_folder
from modelyard.formats.loaders import EXLLAMAV2, quant_method

# bytes per cached key or value: fp16, and exllamav2's Q8 / Q4 caches (a 16-bit scale per 32)
KV_BYTES = {"fp16": 2.0, "q8": 1.0625, "q4": 0.5625}
PAGE = 256  # the dynamic generator's cache holds a multiple of this many tokens


class ExLlamaV2Options(BaseModel):
    """The ExLlamav2 loader's options (the text-generation-webui manual's list)."""

    model_config = ConfigDict(extra="forbid")

    n_ctx: int = Field(
        0, ge=0, le=1 << 21, description="max_seq_len: context in tokens; 0 = the model's own (config.json)"
    )
    gpu_split: list[float] | None = Field(
        None, description="GiB of weights per GPU, e.g. [20, 24]; default: fill each GPU in turn (autosplit)"
    )
    cache_8bit: bool = Field(False, description="8-bit (Q8) KV cache: about half the memory")
    cache_4bit: bool = Field(False, description="4-bit (Q4) KV cache: about a quarter of the memory")
    no_flash_attn: bool = Field(
        False, description="do not use flash-attention (then one request at a time, and no CFG)"
    )
    cfg_cache: bool = Field(
        False,
        description="room in the cache for CFG's negative prompt (a request's guidance_scale and negative_prompt)",
    )
    parallel: int = Field(4, ge=1, le=256, description="requests the dynamic generator batches together")

    @model_validator(mode="after")
    def _one_cache(self) -> Self:
        if self.cache_8bit and self.cache_4bit:
            raise ValueError("cache_8bit and cache_4bit exclude each other: choose one")
        if self.gpu_split is not None and (not self.gpu_split or any(v <= 0 for v in self.gpu_split)):
            raise ValueError("gpu_split needs a positive number of GiB per GPU, e.g. [20, 24]")
        return self

    @property
    def cache_type(self) -> str:
        return "q8" if self.cache_8bit else "q4" if self.cache_4bit else "fp16"


def cache_tokens(n_ctx: int, cfg_cache: bool) -> int:
    """The tokens the generator's cache holds: one context (two with CFG's negative prompt),
    rounded up to whole pages."""
    wanted = n_ctx * (2 if cfg_cache else 1)
    return -(-wanted // PAGE) * PAGE


class ExLlamaV2(RunnerBackend[ExLlamaV2Options]):
    name: ClassVar[str] = EXLLAMAV2
    loader: ClassVar[str] = EXLLAMAV2
    options: ClassVar[type[BaseModel]] = ExLlamaV2Options
    variants: ClassVar[tuple[str, ...]] = ("cuda",)

    @classmethod
    def rank(cls, model: Model) -> int | None:
        # EXL2 runs nowhere else; GPTQ after vLLM's batching
        if model.category != "chat":
            return None
        return {"exl2": 0, "gptq": 1}.get(quant_method(model.format, model.facts) or "")

    def task(self, model: Model) -> str:
        return "exl2"

    def preflight(self, version: str | None = None) -> str:
        if not environments.has_nvidia():
            raise EngineUnavailable(
                "ExLlamaV2 runs only on NVIDIA GPUs (CUDA), and this machine has none",
                hint="an EXL2 model runs nowhere else: use a GGUF build of it (llama.cpp), "
                "or a GPTQ / AWQ one (vllm)",
            )
        return super().preflight(version)

    def install(self, variant: str, progress: Any, version: str | None = None) -> str:
        if variant != "cuda":
            raise Unsupported(
                "exllamav2 has CUDA kernels only", hint="`--variant cuda`, on an NVIDIA machine"
            )
        return super().install(variant, progress, version)

    def adapters(
        self, model: Model, options: ExLlamaV2Options, adapter: Adapter | None
    ) -> list[dict[str, Any]] | None:
        if adapter is not None:
            raise Unsupported(
                "the exllamav2 backend takes no LoRA adapters yet",
                hint="load the adapter on transformers (`--backend transformers`)",
            )
        return None

    def fit(
        self,
        model: Model,
        options: ExLlamaV2Options,
        adapter: Adapter | None,
        free_ram: int,
        free_vram: list[int],
    ) -> Fit | None:
        if model.format != "safetensors" or not Path(model.path).is_dir():
            return None
        o: ExLlamaV2Options = options
        n_ctx = o.n_ctx or model.context_length or 2048
        return fit_folder(
            model,
            free_ram,
            free_vram,
            n_ctx=n_ctx,
            device="cuda",
            batch_size=2 if o.cfg_cache else 1,
            kv_bytes=KV_BYTES[o.cache_type],
        )
