"""diffusers: Stable Diffusion, FLUX and video pipelines."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelyard.backends.common import Device, Precision


class LoraOption(BaseModel):
    """A LoRA applied when the model loads: one of its library adapters or a file / folder."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="an adapter of this model in the library")
    path: str | None = Field(None, description="or a LoRA .safetensors file, or a folder of them")
    weight: float = Field(1.0, ge=0, le=10)

    @model_validator(mode="after")
    def _one_source(self) -> LoraOption:
        if (self.name is None) == (self.path is None):
            raise ValueError("give an adapter's name or a path, not both")
        return self


class DiffusersOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: Device = "auto"
    precision: Precision = "auto"
    steps: int = Field(20, ge=1, le=1000, description="default inference steps")
    guidance_scale: float = Field(7.0, ge=0, le=50)
    cpu_offload: bool = Field(False, description="keep parts of the pipeline in RAM until needed")
    attention_slicing: bool = False
    config: str | None = Field(
        None, description="a local diffusers folder whose configuration a single-file checkpoint takes"
    )
    loras: list[LoraOption] = Field(
        default_factory=list, description="LoRAs applied together, each with a weight"
    )
