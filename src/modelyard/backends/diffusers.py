"""diffusers: Stable Diffusion, FLUX and video pipelines."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from modelyard.backends.common import Device, Precision


class DiffusersOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: Device = "auto"
    precision: Precision = "auto"
    steps: int = Field(20, ge=1, le=1000, description="default inference steps")
    guidance_scale: float = Field(7.0, ge=0, le=50)
    cpu_offload: bool = Field(False, description="keep parts of the pipeline in RAM until needed")
    attention_slicing: bool = False
