"""The runner's tasks: each loads its model with its backend's options and gives the routes it
serves, the facts /health reports and the stats it adds. Each imports its libraries when it
loads, as an environment holds only its own backend's."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from modelyard.runners import requests
from modelyard.runners.app import Endpoint

Routes = dict[str, Endpoint]
Loaded = tuple[Routes, dict[str, Any], Callable[[], dict[str, Any]]]
Options = dict[str, Any]


def _none() -> dict[str, Any]:
    return {}


def embed(args: argparse.Namespace, options: Options) -> Loaded:
    from modelyard.backends.sentence_transformers import SentenceTransformersOptions
    from modelyard.runners.encoders import Embedder

    embedder = Embedder(args.model, SentenceTransformersOptions.model_validate(options))
    routes = {"/v1/embeddings": Endpoint(requests.EmbeddingsBody, embedder.embeddings)}
    return routes, {"dimension": embedder.dimension}, embedder.batcher.stats


def rerank(args: argparse.Namespace, options: Options) -> Loaded:
    from modelyard.backends.sentence_transformers import SentenceTransformersOptions
    from modelyard.runners.encoders import Reranker

    reranker = Reranker(args.model, SentenceTransformersOptions.model_validate(options))
    endpoint = Endpoint(requests.RerankBody, reranker.rerank)
    return {"/v1/rerank": endpoint, "/rerank": endpoint}, {}, reranker.batcher.stats


def classify(args: argparse.Namespace, options: Options) -> Loaded:
    from modelyard.backends.transformers import TransformersOptions
    from modelyard.runners.encoders import Classifier

    classifier = Classifier(args.model, TransformersOptions.model_validate(options))
    routes = {"/v1/classify": Endpoint(requests.ClassifyBody, classifier.classify)}
    return routes, {"labels": sorted(classifier.model.config.label2id)}, classifier.batcher.stats


def generate(args: argparse.Namespace, options: Options) -> Loaded:
    """Chat and completions on transformers (``vision``: image-text-to-text models)."""
    from modelyard.backends.transformers import TransformersOptions
    from modelyard.runners import textgen

    adapters = [textgen.AdapterSpec(**a) for a in json.loads(args.adapters)]
    cls = textgen.VisionGenerator if args.task == "vision" else textgen.Generator
    gen = cls(args.model, TransformersOptions.model_validate(options), adapters)
    facts = {"n_ctx": gen.n_ctx, "adapters": [a.name for a in adapters], **gen.facts}
    return _text_routes(gen), facts, _none


def exl2(args: argparse.Namespace, options: Options) -> Loaded:
    from modelyard.backends.exllamav2 import ExLlamaV2Options
    from modelyard.runners.exl2 import Exl2Generator

    gen = Exl2Generator(args.model, ExLlamaV2Options.model_validate(options))
    return _text_routes(gen), {"n_ctx": gen.n_ctx, **gen.facts}, _none


def _text_routes(gen: Any) -> Routes:
    from modelyard.runners import completions

    return {
        "/v1/chat/completions": Endpoint(requests.ChatBody, partial(completions.chat, gen)),
        "/v1/completions": Endpoint(requests.CompletionBody, partial(completions.complete, gen)),
        "/tokenize": Endpoint(requests.TokenizeBody, partial(completions.tokenize, gen)),
    }


def transcribe(args: argparse.Namespace, options: Options) -> Loaded:
    from modelyard.backends.transformers import TransformersOptions
    from modelyard.runners.speech import Transcriber

    speech = Transcriber(args.model, TransformersOptions.model_validate(options))
    return _listener_routes(speech), speech.facts, speech.batcher.stats


def fastwhisper(args: argparse.Namespace, options: Options) -> Loaded:
    from modelyard.backends.faster_whisper import FasterWhisperOptions
    from modelyard.runners.fastwhisper import FastTranscriber

    fast = FastTranscriber(args.model, FasterWhisperOptions.model_validate(options))
    return _listener_routes(fast), fast.facts, _none


def _listener_routes(listener: Any) -> Routes:
    return {
        "/v1/audio/transcriptions": Endpoint(requests.TranscriptionBody, listener.transcriptions),
        "/v1/audio/translations": Endpoint(requests.TranscriptionBody, listener.translations),
    }


def speak(args: argparse.Namespace, options: Options) -> Loaded:
    from modelyard.backends.transformers import TransformersOptions
    from modelyard.runners.synthesis import Synthesizer

    voice = Synthesizer(args.model, TransformersOptions.model_validate(options))
    return {"/v1/audio/speech": Endpoint(requests.SpeechBody, voice.speech)}, voice.facts, _none


def piper(args: argparse.Namespace, options: Options) -> Loaded:
    from modelyard.backends.piper import PiperOptions
    from modelyard.runners.synthesis import PiperSpeaker

    voice = PiperSpeaker(args.model, PiperOptions.model_validate(options))
    return {"/v1/audio/speech": Endpoint(requests.SpeechBody, voice.speech)}, voice.facts, _none


def caption(args: argparse.Namespace, options: Options) -> Loaded:
    from modelyard.backends.transformers import TransformersOptions
    from modelyard.runners.captions import Captioner

    captioner = Captioner(args.model, TransformersOptions.model_validate(options))
    routes = {
        "/v1/images/captions": Endpoint(requests.CaptionBody, captioner.captions),
        "/v1/chat/completions": Endpoint(requests.ChatBody, captioner.chat),
    }
    return routes, captioner.facts, captioner.batcher.stats


def upscale(args: argparse.Namespace, options: Options) -> Loaded:
    from modelyard.backends.spandrel import SpandrelOptions
    from modelyard.runners.upscale import Upscaler

    upscaler = Upscaler(args.model, SpandrelOptions.model_validate(options))
    return {"/v1/images/upscale": Endpoint(requests.UpscaleBody, upscaler.upscale)}, upscaler.facts, _none


def face(args: argparse.Namespace, options: Options) -> Loaded:
    from modelyard.backends.insightface import InsightFaceOptions
    from modelyard.runners.faces import FaceEmbedder

    faces = FaceEmbedder(args.model, InsightFaceOptions.model_validate(options))
    return {"/v1/embeddings": Endpoint(requests.FaceEmbeddingsBody, faces.embeddings)}, faces.facts, _none


def image(args: argparse.Namespace, options: Options) -> Loaded:
    from modelyard.backends.diffusers import DiffusersOptions
    from modelyard.runners.images import ImageGenerator, LoraSpec

    images = ImageGenerator(
        args.model,
        DiffusersOptions.model_validate(options),
        template=args.template,
        capabilities=json.loads(args.capabilities),
        components=json.loads(args.components),
        loras=[LoraSpec(**a) for a in json.loads(args.adapters)],
        outputs=Path(args.outputs),
    )
    routes = {
        "/v1/images/generations": Endpoint(requests.ImageBody, images.generate),
        "/v1/images/edits": Endpoint(requests.ImageEditBody, images.edit),
        "/v1/videos/generations": Endpoint(requests.VideoBody, images.video),
    }
    return routes, {"pipeline": type(images.pipe).__name__, "loras": images.lora_names}, _none


TASKS: dict[str, Callable[[argparse.Namespace, Options], Loaded]] = {
    "embed": embed,
    "rerank": rerank,
    "classify": classify,
    "generate": generate,
    "vision": generate,
    "exl2": exl2,
    "transcribe": transcribe,
    "fastwhisper": fastwhisper,
    "speak": speak,
    "piper": piper,
    "caption": caption,
    "upscale": upscale,
    "face": face,
    "image": image,
}
