"""llama.cpp: GGUF chat, completion and embedding models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]


class LlamaCppOptions(BaseModel):
    """The llama.cpp loader's options (the text-generation-webui manual's list)."""

    model_config = ConfigDict(extra="forbid")

    n_ctx: int = Field(0, ge=0, le=1 << 21, description="context size in tokens; 0 = the model's own")
    n_gpu_layers: int = Field(-1, ge=-1, description="layers on the GPU; -1 = as many as fit, 0 = none")
    tensor_split: list[float] | None = Field(None, description="share of the model per GPU, e.g. [3, 1]")
    n_batch: int = Field(512, ge=1, le=1 << 16, description="prompt tokens per batch")
    threads: int | None = Field(None, ge=1, le=1024, description="generation threads; default: all cores")
    threads_batch: int | None = Field(None, ge=1, le=1024, description="prompt-processing threads")
    no_mmap: bool = Field(False, description="read the whole file into memory instead of mapping it")
    mlock: bool = Field(False, description="lock the model in RAM so it is never swapped out")
    numa: bool = Field(False, description="NUMA-aware placement")
    flash_attn: Literal["auto", "on", "off"] = "auto"
    rope_freq_base: float | None = Field(None, gt=0, description="RoPE base frequency; default: the model's")
    rope_freq_scale: float | None = Field(None, gt=0, le=1, description="RoPE frequency scale (linear)")
    rope_scaling: Literal["none", "linear", "yarn"] | None = None
    cache_type_k: CacheType = "f16"
    cache_type_v: CacheType = "f16"
    parallel: int = Field(1, ge=1, le=256, description="parallel slots (concurrent sequences)")
    chat_template: str | None = Field(None, description="a Jinja chat template or a llama.cpp template name")
