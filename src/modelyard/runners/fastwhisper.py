"""Speech to text on CTranslate2: Whisper models converted for it (faster-whisper's folders:
model.bin, config.json with the language ids, the tokenizer), through faster-whisper. The same
routes and answers as speech.py: json, text, srt, vtt, verbose_json with segments and words.
Requests run one at a time on the model's thread; ``batch_size`` above 1 batches the chunks of
a long recording (faster-whisper's batched pipeline)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from starlette.responses import Response

from modelyard.backends.faster_whisper import FasterWhisperOptions
from modelyard.errors import InvalidRequest
from modelyard.runners import compute
from modelyard.runners.audio import Audio, raw_audio, read_audio
from modelyard.runners.requests import TranscriptionBody
from modelyard.runners.speech import Listener, language_name, srt, vtt

RATE = 16000  # what Whisper hears


class FastTranscriber(Listener):
    def __init__(self, path: str, options: FasterWhisperOptions) -> None:
        import ctranslate2
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        device = options.device
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        self.model: Any = WhisperModel(
            path,
            device=device,
            compute_type=options.compute_type,
            cpu_threads=options.cpu_threads,
            local_files_only=True,
        )
        self.batched: Any = BatchedInferencePipeline(self.model) if options.batch_size > 1 else None
        self.options = options
        self.multilingual = bool(self.model.model.is_multilingual)
        self.facts = {
            "task": "speech-to-text",
            "translates": self.multilingual,
            "sampling_rate": RATE,
            "device": device,
            "compute_type": options.compute_type,
        }

    def transcribe(
        self, audio: Audio, body: TranscriptionBody, task: str, words: bool
    ) -> tuple[list[Any], Any]:
        """faster-whisper's segments and info for one request."""
        kwargs: dict[str, Any] = {
            "language": body.language,
            "task": task,
            "beam_size": self.options.beam_size,
            "temperature": body.temperature,
            "initial_prompt": body.prompt,
            "word_timestamps": words,
            "vad_filter": self.options.vad_filter,
            "chunk_length": self.options.chunk_length,
        }
        if self.options.max_new_tokens:
            kwargs["max_new_tokens"] = self.options.max_new_tokens
        if self.batched is not None:
            segments, info = self.batched.transcribe(
                audio.samples, batch_size=self.options.batch_size, **kwargs
            )
        else:
            segments, info = self.model.transcribe(audio.samples, **kwargs)
        return list(segments), info

    async def _answer(self, body: TranscriptionBody, task: str) -> dict[str, Any] | Response:
        if body.language and not self.multilingual:
            raise InvalidRequest("this model hears one language: leave 'language' out", param="language")
        verbose = body.response_format == "verbose_json"
        words = verbose and "word" in body.timestamp_granularities
        audio = await asyncio.to_thread(read_audio, raw_audio(body.file), RATE)
        segments, info = await compute.run(self.transcribe, audio, body, task, words)
        text = "".join(s.text for s in segments).strip()
        seconds = {"type": "duration", "seconds": math.ceil(audio.seconds)}
        if body.response_format == "json":
            return {"text": text, "usage": seconds}
        if body.response_format == "text":
            return Response(text + "\n", media_type="text/plain")
        spans = [(round(s.start, 3), round(s.end, 3), s.text.strip()) for s in segments]
        if body.response_format == "srt":
            return Response(srt(spans), media_type="application/x-subrip")
        if body.response_format == "vtt":
            return Response(vtt(spans), media_type="text/vtt")
        answer: dict[str, Any] = {
            "task": task,
            "language": language_name(info.language),
            "duration": round(audio.seconds, 3),
            "text": text,
        }
        if "segment" in body.timestamp_granularities:
            answer["segments"] = [
                {
                    "id": i,
                    "seek": s.seek,
                    "start": round(s.start, 3),
                    "end": round(s.end, 3),
                    "text": s.text.strip(),
                    "tokens": list(s.tokens),
                    "temperature": s.temperature,
                    "avg_logprob": s.avg_logprob,
                    "compression_ratio": s.compression_ratio,
                    "no_speech_prob": s.no_speech_prob,
                }
                for i, s in enumerate(segments)
            ]
        if words:
            answer["words"] = [
                {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
                for s in segments
                for w in s.words or []
            ]
        answer["usage"] = seconds
        return answer
