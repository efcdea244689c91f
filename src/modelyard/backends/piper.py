"""Piper: fast local voices (VITS exported to ONNX, espeak-ng phonemes) on onnxruntime."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from modelyard.backends.common import Device


class PiperOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: Device = "auto"
    length_scale: float | None = Field(
        None, gt=0, le=4, description="the pace: more is slower (default: the voice's)"
    )
    noise_scale: float | None = Field(
        None, ge=0, le=2, description="the voice's variation (default: the voice's)"
    )
    noise_w: float | None = Field(
        None, ge=0, le=2, description="the phonemes' length variation (default: the voice's)"
    )
    sentence_silence: float = Field(0.0, ge=0, le=5, description="seconds of silence between sentences")
