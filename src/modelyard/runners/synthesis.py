"""Text to speech: VITS models (Meta's MMS-TTS and the like) through transformers' text-to-speech
pipeline, and Piper voices (ONNX, with their espeak-ng phonemes) through piper-tts; one request
at a time; the voice is a speaker of a multi-speaker model, the speed its speaking rate; the
answer is audio in the format asked for (audio.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from starlette.responses import Response

from modelyard.backends.piper import PiperOptions
from modelyard.backends.transformers import TransformersOptions
from modelyard.errors import EngineError, InvalidRequest
from modelyard.runners import compute
from modelyard.runners.audio import write_audio
from modelyard.runners.devices import device_of, dtype_of
from modelyard.runners.requests import SpeechBody

log = logging.getLogger(__name__)
DEFAULT = "default"  # the voice of a model with one speaker


class Speaker:
    """What every text-to-speech engine shares: voices, the checks, the answer's format."""

    voices: list[str]
    facts: dict[str, Any]
    variable_speed: bool = True

    def __init__(self) -> None:
        self._lock = asyncio.Lock()  # one at a time: the seed and the speaking rate are the model's

    def voice_of(self, voice: str) -> int | None:
        """The speaker a voice names (None: the model has one)."""
        if self.voices == [DEFAULT]:
            return None  # any name: OpenAI's clients always send one
        if voice not in self.voices:
            raise InvalidRequest(
                f"no voice {voice!r}: this model's voices are {', '.join(self.voices)}", param="voice"
            )
        return self.voices.index(voice)

    def speak(self, text: str, speaker: int | None, speed: float) -> tuple[Any, int]:
        """The samples (floats in -1..1) and their rate."""
        raise NotImplementedError

    async def speech(self, body: SpeechBody, name: str) -> Response:
        if body.response_format == "aac":
            raise InvalidRequest(
                "aac is not offered: ask for mp3, opus, flac, wav or pcm", param="response_format"
            )
        if body.speed != 1.0 and not self.variable_speed:
            raise InvalidRequest("this model speaks at one speed: leave 'speed' at 1", param="speed")
        speaker = self.voice_of(body.voice)
        async with self._lock:
            samples, rate = await compute.run(self.speak, body.input, speaker, body.speed)
        audio, media = await asyncio.to_thread(write_audio, samples, rate, body.response_format)
        return Response(audio, media_type=media)


class Synthesizer(Speaker):
    """A VITS model (or another text-to-audio model of transformers)."""

    def __init__(self, path: str, options: TransformersOptions) -> None:
        from transformers import pipeline

        super().__init__()
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
        self.variable_speed = getattr(self.pipe.model, "speaking_rate", None) is not None
        self.seed = options.seed
        self.facts = {"task": "text-to-speech", "voices": self.voices}

    def speak(self, text: str, speaker: int | None, speed: float) -> tuple[Any, int]:
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


class PiperSpeaker(Speaker):
    """A Piper voice: ``voice.onnx`` beside its ``voice.onnx.json``. Its voices are the speakers
    its config names (else their numbers); a sentence at a time, joined with ``sentence_silence``
    seconds between them."""

    def __init__(self, path: str, options: PiperOptions) -> None:
        import onnxruntime
        from piper import PiperVoice

        super().__init__()
        model = _voice_file(Path(path))
        cuda = (
            options.device in ("auto", "cuda")
            and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        )
        if options.device == "cuda" and not cuda:
            raise EngineError("device 'cuda' was asked for, but onnxruntime has no CUDA provider here")
        self.voice: Any = PiperVoice.load(model, use_cuda=cuda)
        config = self.voice.config
        names = sorted(config.speaker_id_map, key=lambda n: config.speaker_id_map[n])
        if config.num_speakers > 1:
            self.voices = (
                names if len(names) == config.num_speakers else [str(i) for i in range(config.num_speakers)]
            )
        else:
            self.voices = [DEFAULT]
        self.options = options
        self.facts = {
            "task": "text-to-speech",
            "voices": self.voices,
            "sampling_rate": config.sample_rate,
            "language": config.espeak_voice,
        }

    def speak(self, text: str, speaker: int | None, speed: float) -> tuple[Any, int]:
        import numpy as np
        from piper import SynthesisConfig

        config = self.voice.config
        length = (self.options.length_scale or config.length_scale) / speed
        settings = SynthesisConfig(
            speaker_id=speaker,
            length_scale=length,
            noise_scale=self.options.noise_scale,
            noise_w_scale=self.options.noise_w,
        )
        silence = np.zeros(int(config.sample_rate * self.options.sentence_silence), dtype=np.float32)
        parts: list[Any] = []
        for chunk in self.voice.synthesize(text, syn_config=settings):
            if parts and len(silence):
                parts.append(silence)
            parts.append(chunk.audio_float_array)
        if not parts:
            raise InvalidRequest("the text has nothing this voice can say", param="input")
        return np.concatenate(parts), int(config.sample_rate)


def _voice_file(path: Path) -> Path:
    """The voice's .onnx: the path itself, or the one in its folder."""
    if path.is_file():
        return path
    found = sorted(p for p in path.glob("*.onnx") if Path(f"{p}.json").is_file())
    if len(found) != 1:
        raise EngineError(
            f"{path} holds {len(found)} Piper voices (an .onnx beside its .onnx.json): one, please"
        )
    return found[0]
