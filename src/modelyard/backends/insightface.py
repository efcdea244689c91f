"""insightface: face packs (ONNX detectors and recognizers) on onnxruntime."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from modelyard.backends.common import Device


class InsightFaceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: Device = "auto"
    det_size: int = Field(640, ge=160, le=2048, description="the detector's input side (a multiple of 32)")
    det_thresh: float = Field(0.5, gt=0, lt=1, description="the least detection score a face needs")
    max_faces: int = Field(0, ge=0, le=1000, description="the most faces per image, largest first; 0 = all")
    normalize: bool = Field(True, description="return unit-length embeddings")
