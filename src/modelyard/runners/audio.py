"""Audio that requests carry and answers hold: read from a data URL, base64 or a local file
(wav, flac, mp3, ogg) as mono samples at a model's rate; written as wav, flac, mp3, opus or raw
PCM."""

from __future__ import annotations

import base64
import binascii
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard.errors import EngineError, InvalidRequest
from modelyard.formats.files import is_path
from modelyard.runners.media import PATH_REFUSED

FORMATS = "wav, flac, mp3 or ogg"
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
PCM_RATE = 24000  # OpenAI's pcm: 24 kHz, 16-bit little-endian, one channel
# response_format -> (soundfile's format, subtype, media type)
WRITTEN = {
    "wav": ("WAV", "PCM_16", "audio/wav"),
    "flac": ("FLAC", "PCM_16", "audio/flac"),
    "mp3": ("MP3", "MPEG_LAYER_III", "audio/mpeg"),
    "opus": ("OGG", "OPUS", "audio/ogg"),
}


@dataclass(frozen=True)
class Audio:
    samples: Any  # mono float32 samples at the model's rate (numpy)
    seconds: float


def raw_audio(value: str) -> bytes:
    """The bytes a request's ``file`` carries: a data URL (a form's file) or base64. Web URLs
    and paths are refused: engines neither fetch from the network nor read what a client names."""
    if value.startswith(("http://", "https://")):
        raise InvalidRequest("'file' is a web URL; send the audio itself", param="file")
    if is_path(value):
        raise InvalidRequest(PATH_REFUSED.format(param="file"), param="file")
    try:
        if value.startswith("data:"):
            return base64.b64decode(value.split(",", 1)[1])
        return base64.b64decode(value, validate=True)
    except (OSError, ValueError, binascii.Error) as e:
        raise InvalidRequest(f"'file' could not be read: {e}", param="file") from None


def read_audio(raw: bytes, rate: int) -> Audio:
    """Decode ``raw`` (wav, flac, mp3, ogg) to mono float32 samples at ``rate`` Hz."""
    try:
        import soundfile
    except ImportError as e:
        raise EngineError(
            "this environment cannot read audio (no soundfile)",
            hint="`pip install soundfile scipy` in the transformers backend's environment",
        ) from e

    try:
        data, found = soundfile.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise InvalidRequest(
            f"'file' is not audio this engine reads ({FORMATS}): {e}", param="file"
        ) from None
    if not len(data):
        raise InvalidRequest("'file' holds no audio", param="file")
    mono = resample(data.mean(axis=1), int(found), rate)
    return Audio(np.ascontiguousarray(mono, dtype=np.float32), len(data) / found)


def resample(samples: Any, found: int, rate: int) -> Any:
    """``samples`` at ``found`` Hz, at ``rate`` Hz (a polyphase filter)."""
    if found == rate:
        return samples
    from scipy.signal import resample_poly

    g = math.gcd(int(found), rate)
    return resample_poly(samples, rate // g, int(found) // g).astype(np.float32)


def write_audio(samples: Any, rate: int, fmt: str) -> tuple[bytes, str]:
    """Mono float samples as ``fmt`` (wav, flac, mp3, opus, pcm): the bytes and their media type."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    if fmt == "pcm":
        return (resample(clipped, rate, PCM_RATE) * 32767).astype("<i2").tobytes(), "audio/pcm"
    import soundfile

    kind, subtype, media = WRITTEN[fmt]
    if fmt == "opus" and rate not in OPUS_RATES:
        clipped, rate = resample(clipped, rate, PCM_RATE), PCM_RATE
    out = io.BytesIO()
    soundfile.write(out, clipped, rate, format=kind, subtype=subtype)
    return out.getvalue(), media
