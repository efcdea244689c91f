"""faster-whisper: Whisper models converted for CTranslate2."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard.backends.common import Device


class FasterWhisperOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: Device = "auto"
    compute_type: Literal[
        "default", "float32", "float16", "bfloat16", "int8", "int8_float16", "int8_float32"
    ] = Field(
        "default",
        description="CTranslate2's: the weights' own type, or a conversion at load (int8: a quarter)",
    )
    cpu_threads: int = Field(0, ge=0, le=256, description="0: CTranslate2's default")
    beam_size: int = Field(1, ge=1, le=10, description="1: greedy, as OpenAI's API decodes")
    batch_size: int = Field(
        1, ge=1, le=64, description="above 1: a long recording's chunks in batches of this many"
    )
    chunk_length: int = Field(30, ge=5, le=30, description="seconds of audio per chunk")
    max_new_tokens: int | None = Field(None, ge=1, le=448, description="the most tokens per chunk")
    vad_filter: bool = Field(False, description="skip silence first (Silero VAD, in faster-whisper)")
