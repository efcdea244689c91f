"""Text to speech: VITS models (Meta's MMS-TTS and the like) through transformers' text-to-speech
pipeline, one request at a time; the voice is a speaker of a multi-speaker model, the speed its
speaking rate; the answer is audio in the format asked for (audio.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.responses import Response

from modelyard.backends.transformers import TransformersOptions
from modelyard.errors import InvalidRequest
from modelyard.runners import compute
from modelyard.runners.audio import write_audio
from modelyard.runners.devices import device_of, dtype_of
from modelyard.runners.requests import SpeechBody

log = logging.getLogger(__name__)
DEFAULT = "default"  # the voice of a model with one speaker


class Synthesizer:
    def __init__(self, path: str, options: TransformersOptions) -> None:
        from transformers import pipeline

        device = device_of(options.device)
        self.pipe: Any = pipeline(
            "text-to-audio",  # text-to-speech's own name
            model=path,
            device=device,
            dtype=dtype_of(options.precision, device),
            trust_remote_code=options.trust_remote_code,
        )
        speakers = int(getattr(self.pipe.model.config, "num_speakers", 1) or 1)
        self.voices = [str(i) for i in range(speakers)] if speakers > 1 else [DEFAULT]
        self.seed = options.seed
        self._lock = asyncio.Lock()  # one at a time: the seed and the speaking rate are the model's
        self.facts = {"task": "text-to-speech", "voices": self.voices}

    def voice_of(self, voice: str) -> int | None:
        """The speaker a voice names (None: the model has one)."""
        if self.voices == [DEFAULT]:
            return None  # any name: OpenAI's clients always send one
        if voice not in self.voices:
            raise InvalidRequest(
                f"no voice {voice!r}: this model's voices are {', '.join(self.voices)}", param="voice"
            )
        return int(voice)

    def _speak(self, text: str, speaker: int | None, speed: float) -> tuple[Any, int]:
        import torch

        model = self.pipe.model
        before = getattr(model, "speaking_rate", None)
        if before is not None:
            model.speaking_rate = speed
        try:
            torch.manual_seed(self.seed)  # the same text, voice and speed: the same audio
            found = self.pipe(text, forward_params={"speaker_id": speaker} if speaker is not None else {})
        finally:
            if before is not None:
                model.speaking_rate = before
        return found["audio"].reshape(-1), int(found["sampling_rate"])

    async def speech(self, body: SpeechBody, name: str) -> Response:
        if body.response_format == "aac":
            raise InvalidRequest(
                "aac is not offered: ask for mp3, opus, flac, wav or pcm", param="response_format"
            )
        if body.speed != 1.0 and getattr(self.pipe.model, "speaking_rate", None) is None:
            raise InvalidRequest("this model speaks at one speed: leave 'speed' at 1", param="speed")
        speaker = self.voice_of(body.voice)
        async with self._lock:
            samples, rate = await compute.run(self._speak, body.input, speaker, body.speed)
        audio, media = await asyncio.to_thread(write_audio, samples, rate, body.response_format)
        return Response(audio, media_type=media)
