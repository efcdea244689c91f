"""sentence-transformers: embedding and cross-encoder rerank models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from modelyard.backends.common import Device, Precision


class SentenceTransformersOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: Device = "auto"
    precision: Precision = "auto"
    batch_size: int = Field(32, ge=1, le=4096)
    n_ctx: int = Field(0, ge=0, le=1 << 20, description="max sequence length; 0 = the model's own")
    normalize: bool = Field(True, description="return unit-length embeddings")
    trust_remote_code: bool = False
