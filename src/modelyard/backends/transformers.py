"""transformers: safetensors text generation, chat and classification models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelyard.backends.common import Device, Precision, Truncation, truncation_field


class PeftAdapter(BaseModel):
    """One of model-compose's peft_adapters: a LoRA of this model in the library, or a folder."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="an adapter of this model in the library")
    path: str | None = Field(None, description="or a PEFT adapter folder")
    weight: float = Field(1.0, ge=0, le=10, description="0 = off, 1 = full effect")

    @model_validator(mode="after")
    def _one_source(self) -> PeftAdapter:
        if (self.name is None) == (self.path is None):
            raise ValueError("give an adapter's name or a path, not both")
        return self


class TransformersOptions(BaseModel):
    """The model-compose and text-generation-webui manuals' transformers options."""

    model_config = ConfigDict(extra="forbid")

    device: Device = "auto"
    precision: Precision = "auto"
    quantization: Literal["none", "int8", "int4", "nf4"] = Field(
        "none", description="bitsandbytes at load: int8, int4 (fp4) or nf4; on the CPU too"
    )
    compute_dtype: Precision = Field(
        "auto", description="4-bit: the dtype the matmuls run in (auto: the precision's)"
    )
    double_quant: bool = Field(False, description="4-bit: quantize the quantization constants too")
    auto_devices: bool = Field(False, description="spread the model over the GPUs and the CPU by free memory")
    gpu_memory: list[float] | None = Field(
        None, description="GiB each GPU may hold, e.g. [10, 8] (implies auto_devices)"
    )
    cpu_memory: float | None = Field(None, gt=0, description="GiB the CPU may hold (implies auto_devices)")
    disk_offload: str | None = Field(
        None, description="a folder for the layers that fit nowhere (implies auto_devices)"
    )
    alpha_value: float | None = Field(
        None, ge=1, le=64, description="NTK RoPE scaling: the base grows by alpha^(d/(d-2))"
    )
    compress_pos_emb: float | None = Field(
        None, ge=1, le=64, description="linear RoPE scaling: positions divided by this"
    )
    rope_freq_base: float | None = Field(
        None, gt=0, description="the RoPE base (theta); default: the model's"
    )
    truncation: Truncation = truncation_field()
    use_fast: bool = Field(True, description="the fast (Rust) tokenizer; transformers 5 has no other")
    wbits: Literal[2, 3, 4, 8] | None = Field(None, description="GPTQ without a quantize config: its bits")
    groupsize: int | None = Field(
        None, ge=-1, le=1024, description="GPTQ without a quantize config: group size (-1: none)"
    )
    desc_act: bool | None = Field(None, description="GPTQ without a quantize config: act-order (desc_act)")
    batch_size: int = Field(1, ge=1, le=1024)
    chunk_length: int = Field(
        30, ge=5, le=30, description="speech-to-text: seconds of audio per chunk of a long recording"
    )
    seed: int = Field(
        0, ge=0, description="text-to-speech: the seed of each answer (the same text, the same audio)"
    )
    max_new_tokens: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="the most tokens per speech chunk (default: the model's) or per caption (default 32)",
    )
    n_ctx: int = Field(0, ge=0, le=1 << 21, description="context size in tokens; 0 = the model's own")
    low_cpu_mem_usage: bool = False
    trust_remote_code: bool = Field(False, description="run the model repository's own Python code")
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = "auto"
    peft_adapters: list[PeftAdapter] = Field(
        default_factory=list, description="PEFT adapters applied together, each with a weight"
    )
    draft_model: str | None = Field(
        None,
        description="assisted generation: a small model with the same vocabulary that drafts tokens "
        "(a library model's name, or a folder; saved as its folder)",
    )
    prompt_lookup: int | None = Field(
        None, ge=1, le=64, description="drafts from n-grams of the prompt (prompt lookup): tokens per draft"
    )
    draft_max: int | None = Field(None, ge=1, le=64, description="tokens the draft model drafts per step")
