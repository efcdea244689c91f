"""spandrel: single-image super-resolution checkpoints (ESRGAN, Real-ESRGAN, SwinIR, HAT, ...)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from modelyard.backends.common import Device, Precision


class SpandrelOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: Device = "auto"
    precision: Precision = Field("auto", description="float16 / bfloat16 where the architecture takes it")
    tile_size: int = Field(
        512,
        ge=0,
        le=8192,
        description="input pixels per tile side for big images; 0 = the whole image at once",
    )
