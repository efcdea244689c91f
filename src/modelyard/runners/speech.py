"""Speech to text: Whisper and the other speech recognition models of transformers (CTC encoders
too), through its automatic-speech-recognition pipeline. Long audio is cut into chunks (the
``chunk_length`` option), concurrent requests run through the model as one batch, and the answer
takes OpenAI's shapes: json, text, srt, vtt, verbose_json (segments, words)."""

from __future__ import annotations

import asyncio
import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from modelyard.backends.transformers import TransformersOptions
from modelyard.errors import InvalidRequest
from modelyard.runners import compute
from modelyard.runners.audio import Audio, raw_audio, read_audio
from modelyard.runners.batching import Batcher
from modelyard.runners.devices import device_of, dtype_of
from modelyard.runners.requests import TranscriptionBody

log = logging.getLogger(__name__)
BATCH = 16  # requests one batch takes at most


@dataclass(frozen=True)
class Job:
    """One request's pass through the model: the audio and how to decode it."""

    audio: Audio
    task: str  # transcribe or translate
    language: str | None
    temperature: float
    stamps: bool | str  # False, True (segments) or "word"
    prompt: str | None

    @property
    def key(self) -> tuple[Any, ...]:
        """Jobs with the same key run in one call of the pipeline."""
        return (self.task, self.language, self.temperature, self.stamps, self.prompt)


class Listener:
    """The two routes of a speech-to-text engine; ``_answer`` answers either."""

    multilingual: bool

    async def transcriptions(self, body: TranscriptionBody, name: str) -> dict[str, Any] | Response:
        return await self._answer(body, "transcribe")

    async def translations(self, body: TranscriptionBody, name: str) -> dict[str, Any] | Response:
        if not self.multilingual:
            raise InvalidRequest("this model does not translate: only multilingual Whisper models do")
        if body.language:
            raise InvalidRequest("translations take no 'language': the answer is English", param="language")
        return await self._answer(body, "translate")

    async def _answer(self, body: TranscriptionBody, task: str) -> dict[str, Any] | Response:
        raise NotImplementedError


class Transcriber(Listener):
    def __init__(self, path: str, options: TransformersOptions) -> None:
        from transformers import pipeline

        device = device_of(options.device)
        self.pipe: Any = pipeline(
            "automatic-speech-recognition",
            model=path,
            device=device,
            dtype=dtype_of(options.precision, device),
            trust_remote_code=options.trust_remote_code,
        )
        config = self.pipe.model.config
        self.whisper = config.model_type == "whisper"
        self.seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        generation = getattr(self.pipe.model, "generation_config", None)
        self.words = not self.seq2seq or bool(getattr(generation, "alignment_heads", None))
        self.multilingual = self.whisper and bool(getattr(generation, "is_multilingual", False))
        self.rate: int = self.pipe.feature_extractor.sampling_rate  # type: ignore[union-attr]
        self.chunk = options.chunk_length
        self.max_new_tokens = options.max_new_tokens
        self.batch_size = max(1, options.batch_size)
        self.batcher: Batcher[Job, dict[str, Any]] = Batcher(self._run, BATCH)
        self.facts = {"task": "speech-to-text", "translates": self.multilingual, "sampling_rate": self.rate}

    # -- the model -------------------------------------------------------------------------------

    def _run(self, jobs: list[Job]) -> list[dict[str, Any]]:
        """Each group of jobs that decode alike in one pipeline call (its chunks batched)."""
        results: list[dict[str, Any] | None] = [None] * len(jobs)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(job.key, []).append(i)
        for indexes in groups.values():
            first = jobs[indexes[0]]
            inputs = [{"raw": jobs[i].audio.samples, "sampling_rate": self.rate} for i in indexes]
            answers = self.pipe(inputs, batch_size=self.batch_size, **self._call(first))
            for i, answer in zip(indexes, answers, strict=True):
                results[i] = answer
        return [r for r in results if r is not None]

    def _call(self, job: Job) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"chunk_length_s": self.chunk}
        if job.stamps:
            kwargs["return_timestamps"] = job.stamps if self.seq2seq else "word"
        if not self.seq2seq:
            return kwargs
        generate: dict[str, Any] = {}
        if self.max_new_tokens:
            generate["max_new_tokens"] = self.max_new_tokens
        if job.temperature > 0:
            generate.update(do_sample=True, temperature=job.temperature)
        if self.whisper:
            if self.multilingual:
                generate["task"] = job.task
                if job.language:
                    generate["language"] = job.language
            if job.prompt:
                import torch

                ids = self.pipe.tokenizer.get_prompt_ids(job.prompt)
                generate["prompt_ids"] = torch.tensor(ids, device=self.pipe.model.device)
        kwargs["generate_kwargs"] = generate
        return kwargs

    def detect_language(self, audio: Audio) -> str | None:
        """The language Whisper hears in the first 30 s (a code, e.g. en)."""
        import torch

        features = self.pipe.feature_extractor(
            audio.samples[: self.rate * 30], sampling_rate=self.rate, return_tensors="pt"
        ).input_features
        model = self.pipe.model
        with torch.inference_mode():
            ids = model.detect_language(features.to(model.device, model.dtype))
        token = self.pipe.tokenizer.convert_ids_to_tokens(int(ids[0]))
        return str(token).strip("<|>") or None

    # -- requests --------------------------------------------------------------------------------

    async def _answer(self, body: TranscriptionBody, task: str) -> dict[str, Any] | Response:
        if body.prompt and not self.whisper:
            raise InvalidRequest("'prompt' is for Whisper models", param="prompt")
        if body.language and self.seq2seq and not self.multilingual:
            raise InvalidRequest("this model hears one language: leave 'language' out", param="language")
        verbose = body.response_format == "verbose_json"
        words = verbose and "word" in body.timestamp_granularities
        if words and not self.words:
            raise InvalidRequest(
                "this model cannot time words (its generation config has no alignment heads)",
                param="timestamp_granularities",
            )
        segments = body.response_format in ("srt", "vtt") or (
            verbose and "segment" in body.timestamp_granularities
        )
        audio = await asyncio.to_thread(read_audio, raw_audio(body.file), self.rate)
        job = Job(audio, task, body.language, body.temperature, segments, body.prompt)
        jobs = [job]
        if words:
            jobs.append(Job(audio, task, body.language, body.temperature, "word", body.prompt))
        found = await self.batcher.run(jobs)
        text = str(found[0]["text"]).strip()
        if body.response_format == "json":
            return {"text": text, "usage": {"type": "duration", "seconds": math.ceil(audio.seconds)}}
        if body.response_format == "text":
            return Response(text + "\n", media_type="text/plain")
        spans = _spans(found[0].get("chunks") or [], text, audio.seconds)
        if body.response_format == "srt":
            return Response(srt(spans), media_type="application/x-subrip")
        if body.response_format == "vtt":
            return Response(vtt(spans), media_type="text/vtt")
        language = body.language or (
            await compute.run(self.detect_language, audio) if self.multilingual else None
        )
        answer: dict[str, Any] = {
            "task": "translate" if task == "translate" else "transcribe",
            "language": language_name(language),
            "duration": round(audio.seconds, 3),
            "text": text,
        }
        if segments:
            answer["segments"] = [self._segment(i, s, body.temperature) for i, s in enumerate(spans)]
        if words:
            answer["words"] = [
                {"word": w.strip(), "start": s, "end": e}
                for s, e, w in _spans(found[1].get("chunks") or [], text, audio.seconds)
            ]
        answer["usage"] = {"type": "duration", "seconds": math.ceil(audio.seconds)}
        return answer

    def _segment(self, i: int, span: tuple[float, float, str], temperature: float) -> dict[str, Any]:
        start, end, text = span
        encoded = text.encode()
        ratio = len(encoded) / len(zlib.compress(encoded)) if encoded else 0.0
        tokens = self.pipe.tokenizer(text, add_special_tokens=False).input_ids if self.pipe.tokenizer else []
        return {
            "id": i,
            "seek": int(start * 100),  # in 10 ms frames, as Whisper counts
            "start": start,
            "end": end,
            "text": text,
            "tokens": tokens,
            "temperature": temperature,
            "compression_ratio": round(ratio, 4),
        }


def _spans(chunks: Sequence[dict[str, Any]], text: str, seconds: float) -> list[tuple[float, float, str]]:
    """(start, end, text) of each timed chunk; a chunk the model did not close ends where the next
    starts (or the audio ends). No chunks: the whole text, over the whole audio."""
    if not chunks:
        return [(0.0, round(seconds, 3), text)] if text else []
    spans: list[tuple[float, float, str]] = []
    for i, chunk in enumerate(chunks):
        start, end = chunk.get("timestamp") or (None, None)
        begin = float(start) if start is not None else (spans[-1][1] if spans else 0.0)
        if end is None:
            following = chunks[i + 1].get("timestamp", (None, None))[0] if i + 1 < len(chunks) else None
            end = following if following is not None else seconds
        spans.append((round(begin, 3), round(max(float(end), begin), 3), str(chunk.get("text", "")).strip()))
    return spans


def _clock(seconds: float, mark: str) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{mark}{ms:03d}"


def srt(spans: list[tuple[float, float, str]]) -> str:
    return "".join(
        f"{i}\n{_clock(s, ',')} --> {_clock(e, ',')}\n{t}\n\n" for i, (s, e, t) in enumerate(spans, 1)
    )


def vtt(spans: list[tuple[float, float, str]]) -> str:
    return "WEBVTT\n\n" + "".join(f"{_clock(s, '.')} --> {_clock(e, '.')}\n{t}\n\n" for s, e, t in spans)


def language_name(code: str | None) -> str:
    """Whisper's name for a language code (en -> english), as OpenAI answers it."""
    if not code:
        return ""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return str(LANGUAGES.get(code, code))
