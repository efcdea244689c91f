"""Image captioning: BLIP, GIT and VisionEncoderDecoder models (ViT-GPT2, TrOCR) through
transformers' generate. Concurrent requests that decode alike run through the model as one
batch. A prompt starts the caption (BLIP's "a photograph of"); chat is answered with the caption
of the last user message's images, for clients that only speak chat."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from modelyard.backends.transformers import TransformersOptions
from modelyard.errors import InvalidRequest
from modelyard.runners.batching import Batcher
from modelyard.runners.completions import (
    DONE,
    Answer,
    ChatChoice,
    Delta,
    Head,
    Message,
    Usage,
    answer_id,
    usage_of,
)
from modelyard.runners.devices import device_of, dtype_of
from modelyard.runners.media import load_image
from modelyard.runners.requests import CaptionBody, ChatBody

BATCH = 16  # images one batch takes at most
MAX_TOKENS = 32  # a caption's length when neither the request nor the settings say


@dataclass(frozen=True)
class Job:
    """One image's caption and how to decode it."""

    image: Any  # a PIL image
    prompt: str
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None

    @property
    def key(self) -> tuple[Any, ...]:
        """Jobs with the same key run in one call of generate."""
        return (self.prompt, self.max_tokens, self.temperature, self.top_p, self.seed)


@dataclass(frozen=True)
class Caption:
    text: str
    prompt_tokens: int
    tokens: int  # the tokens generated


class Captioner:
    def __init__(self, path: str, options: TransformersOptions) -> None:
        import transformers

        self.device = device_of(options.device)
        remote = options.trust_remote_code
        auto: Any = transformers.AutoModelForImageTextToText
        model = auto.from_pretrained(
            path,
            dtype=dtype_of(options.precision, self.device),
            local_files_only=True,
            trust_remote_code=remote,
        )
        self.model: Any = model.to(self.device).eval()
        self.kind: str = self.model.config.model_type
        processors: Any = transformers.AutoProcessor
        processor = processors.from_pretrained(path, local_files_only=True, trust_remote_code=remote)
        # VisionEncoderDecoder folders have an image processor and the decoder's tokenizer, no processor
        self.processor: Any = processor if hasattr(processor, "image_processor") else None
        image_processors: Any = transformers.AutoImageProcessor
        self.images: Any = (
            processor.image_processor
            if self.processor is not None
            else image_processors.from_pretrained(path, local_files_only=True)
        )
        self.tokenizer: Any = getattr(processor, "tokenizer", processor)
        self.max_tokens = options.max_new_tokens or MAX_TOKENS
        self.batcher: Batcher[Job, Caption] = Batcher(self._run, BATCH)
        self.facts = {"task": "captioning", "architecture": self.kind}

    # -- the model -------------------------------------------------------------------------------

    def _run(self, jobs: list[Job]) -> list[Caption]:
        results: list[Caption | None] = [None] * len(jobs)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(job.key, []).append(i)
        for indexes in groups.values():
            captions = self.caption([jobs[i].image for i in indexes], jobs[indexes[0]])
            for i, caption in zip(indexes, captions, strict=True):
                results[i] = caption
        return [r for r in results if r is not None]

    def inputs(self, images: list[Any], prompt: str) -> dict[str, Any]:
        """generate's inputs for images that share a prompt: each model starts its caption its
        own way (BLIP through its processor, GIT after [CLS], an encoder-decoder after the
        decoder's start token)."""
        import torch

        n = len(images)
        pixels = self.images(images=images, return_tensors="pt")["pixel_values"].to(self.device)
        pixels = pixels.to(self.model.dtype)
        if not prompt:
            return {"pixel_values": pixels}
        if self.kind == "vision-encoder-decoder":
            ids = [self.model.config.decoder_start_token_id, *self._ids(prompt)]
            return {"pixel_values": pixels, "decoder_input_ids": torch.tensor([ids] * n, device=self.device)}
        if self.kind == "git":
            ids = [self.tokenizer.cls_token_id, *self._ids(prompt)]
            return {"pixel_values": pixels, "input_ids": torch.tensor([ids] * n, device=self.device)}
        if self.processor is None:
            raise InvalidRequest("this model takes no prompt: leave it out", param="prompt")
        both = self.processor(images=images, text=[prompt] * n, return_tensors="pt")
        return {"pixel_values": pixels, "input_ids": both["input_ids"].to(self.device)}

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def caption(self, images: list[Any], how: Job) -> list[Caption]:
        """Captions of ``images``, decoded as ``how`` says; each begins with its prompt."""
        import torch

        inputs = self.inputs(images, how.prompt)
        sampling: dict[str, Any] = {"do_sample": False}
        if how.temperature > 0:
            sampling = {"do_sample": True, "temperature": how.temperature, "top_p": how.top_p}
            if how.seed is not None:
                torch.manual_seed(how.seed)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=how.max_tokens, **sampling)
        started = inputs.get("decoder_input_ids", inputs.get("input_ids"))
        given = 1 if started is None else int(started.shape[1])  # without a prompt: the start token
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        pad = self.tokenizer.pad_token_id
        captions = []
        for row, text in zip(out.tolist(), texts, strict=True):
            made = [t for t in row[given:] if t != pad]
            captions.append(Caption(text.strip(), given, len(made)))
        return captions

    # -- the routes ------------------------------------------------------------------------------

    async def captions(self, body: CaptionBody, name: str) -> dict[str, Any]:
        images = await asyncio.to_thread(lambda: [load_image(i) for i in body.images()])
        found = await self.batcher.run(
            [self._job(i, body.prompt or "", body.max_tokens, 0.0, 1.0, None) for i in images]
        )
        return {
            "object": "list",
            "created": int(time.time()),
            "model": name,
            "data": [{"index": i, "caption": c.text} for i, c in enumerate(found)],
            "usage": _usage(found).model_dump(exclude_unset=True),
        }

    def _job(self, image: Any, prompt: str, max_tokens: int | None, temperature: float, top_p: float,
             seed: int | None) -> Job:  # fmt: skip
        return Job(image, prompt, max_tokens or self.max_tokens, temperature, top_p, seed)

    async def chat(self, body: ChatBody, name: str) -> Answer | AsyncIterator[bytes]:
        if body.tools or body.response_format is not None or body.guidance_scale is not None:
            raise InvalidRequest("a captioning model answers with a caption: no tools, formats or guidance")
        max_tokens = body.max_completion_tokens or body.max_tokens
        temperature = body.temperature or 0.0
        images = await asyncio.to_thread(_last_images, body.messages)
        jobs = [self._job(i, "", max_tokens, temperature, body.top_p or 1.0, body.seed) for i in images]
        found = await self.batcher.run(jobs)
        text = "\n".join(c.text for c in found)
        reason = (
            "length" if any(c.tokens >= j.max_tokens for c, j in zip(found, jobs, strict=True)) else "stop"
        )
        head = Head(answer_id("chatcmpl"), int(time.time()), name, chat=True)
        usage = _usage(found)
        if not body.stream:
            return head.answer(
                [ChatChoice(index=0, message=Message(content=text), finish_reason=reason)], usage=usage
            )
        events = [head.delta(Delta(role="assistant", content=text)), head.delta(Delta(), reason)]
        if body.stream_options is not None and body.stream_options.include_usage:
            events.append(head.usage(usage))
        return _sse([*events, DONE])


def _last_images(messages: list[dict[str, Any]]) -> list[Any]:
    """The images of the last user message: what a captioner answers about (its text is no
    instruction a captioning model could follow)."""
    for m in reversed(messages):
        if m.get("role") != "user":
            continue
        content = m.get("content")
        parts = content if isinstance(content, list) else []
        urls = []
        for part in parts:
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = part.get("image_url")
                urls.append(url.get("url") if isinstance(url, dict) else url)
        if urls:
            return [load_image(u, "messages") for u in urls]
        break
    raise InvalidRequest(
        "a captioning model answers with the caption of an image: send a user message with an image_url part",
        param="messages",
    )


def _usage(found: list[Caption]) -> Usage:
    return usage_of(sum(c.prompt_tokens for c in found), sum(c.tokens for c in found))


async def _sse(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event
