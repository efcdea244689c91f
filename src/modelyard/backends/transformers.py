"""transformers: safetensors text generation, chat and classification models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard.backends.common import Device, Precision


class TransformersOptions(BaseModel):
    """The model-compose and text-generation-webui manuals' transformers options."""

    model_config = ConfigDict(extra="forbid")

    device: Device = "auto"
    precision: Precision = "auto"
    quantization: Literal["none", "int8", "int4", "nf4"] = "none"
    batch_size: int = Field(1, ge=1, le=1024)
    n_ctx: int = Field(0, ge=0, le=1 << 21, description="context size in tokens; 0 = the model's own")
    low_cpu_mem_usage: bool = False
    trust_remote_code: bool = Field(False, description="run the model repository's own Python code")
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = "auto"
