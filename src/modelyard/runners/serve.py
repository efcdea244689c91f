"""``python -m modelyard.runners --task TASK --model PATH --name NAME --port PORT --options JSON``

Loads the model first (a failure goes to stderr, which is the instance's log, and exits 1), then
serves it. The controller polls /health until it answers."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from modelyard.errors import ModelyardError
from modelyard.runners import ENGINE_KEY, requests
from modelyard.runners.app import Endpoint

TASKS = (
    "embed",
    "rerank",
    "classify",
    "generate",
    "vision",
    "image",
    "exl2",
    "transcribe",
    "speak",
    "caption",
    "upscale",
    "face",
    "piper",
    "fastwhisper",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m modelyard.runners")
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--model", required=True, help="the model's file or folder")
    parser.add_argument("--name", required=True, help="the name clients use")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--options", default="{}", help="the backend's options, JSON")
    parser.add_argument("--adapters", default="[]", help="[{name, path, weight}], JSON")
    parser.add_argument("--components", default="{}", help="{role: path}, JSON (image models)")
    parser.add_argument("--template", default="sd_official", help="image models: sd_official, flux, video")
    parser.add_argument("--capabilities", default='["text-to-image"]', help="image models: JSON list")
    parser.add_argument("--outputs", default="outputs", help="image models: where url answers write files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("modelyard.runner")
    log.info("loading %s (%s) from %s", args.name, args.task, args.model)
    _quiet()
    try:
        routes, info, stats = _load(args)
    except ModelyardError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as e:
        log.exception("the model could not be loaded")
        print(f"error: the model could not be loaded: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    log.info("ready: %s", json.dumps(info))

    from modelyard.runners.app import build_app

    app = build_app(args.name, routes, info, stats, key=os.environ.pop(ENGINE_KEY, None))
    sys.exit(_serve(app, args.host, args.port))


def _serve(app: Any, host: str, port: int) -> int:
    """The HTTP server on a thread of its own; the model's work on this, the main thread
    (compute.py), until the server stops (SIGTERM, SIGINT). The exit status."""
    import uvicorn

    from modelyard.runners.compute import MAIN

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))

    def http() -> None:
        try:
            server.run()
        finally:
            MAIN.shutdown()

    def stop(_signal: int, _frame: Any) -> None:
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    thread = threading.Thread(target=http, name="http", daemon=True)
    thread.start()
    MAIN.serve()
    thread.join(30)
    return 0 if server.started else 1


def _quiet() -> None:
    """No progress bars in the instance's log."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    off: Any = hf_logging.disable_progress_bar
    off()


Loaded = tuple[dict[str, Endpoint], dict[str, Any], Callable[[], dict[str, Any]]]


def _load(args: argparse.Namespace) -> Loaded:
    """The routes, the facts /health reports, and the stats it adds."""
    options = json.loads(args.options)
    if args.task in ("embed", "rerank"):
        from modelyard.backends.sentence_transformers import SentenceTransformersOptions
        from modelyard.runners.encoders import Embedder, Reranker

        st = SentenceTransformersOptions.model_validate(options)
        if args.task == "embed":
            embedder = Embedder(args.model, st)
            info = {"dimension": embedder.dimension}
            return (
                {"/v1/embeddings": Endpoint(requests.EmbeddingsBody, embedder.embeddings)},
                info,
                embedder.batcher.stats,
            )
        reranker = Reranker(args.model, st)
        rerank = Endpoint(requests.RerankBody, reranker.rerank)
        return {"/v1/rerank": rerank, "/rerank": rerank}, {}, reranker.batcher.stats
    if args.task in ("classify", "generate", "vision", "transcribe", "speak", "caption"):
        from modelyard.backends.transformers import TransformersOptions

        tf = TransformersOptions.model_validate(options)
        if args.task == "transcribe":
            from modelyard.runners.speech import Transcriber

            speech = Transcriber(args.model, tf)
            speech_routes = {
                "/v1/audio/transcriptions": Endpoint(requests.TranscriptionBody, speech.transcriptions),
                "/v1/audio/translations": Endpoint(requests.TranscriptionBody, speech.translations),
            }
            return speech_routes, speech.facts, speech.batcher.stats
        if args.task == "speak":
            from modelyard.runners.synthesis import Synthesizer

            voice = Synthesizer(args.model, tf)
            return {"/v1/audio/speech": Endpoint(requests.SpeechBody, voice.speech)}, voice.facts, dict
        if args.task == "caption":
            from modelyard.runners.captions import Captioner

            captioner = Captioner(args.model, tf)
            caption_routes = {
                "/v1/images/captions": Endpoint(requests.CaptionBody, captioner.captions),
                "/v1/chat/completions": Endpoint(requests.ChatBody, captioner.chat),
            }
            return caption_routes, captioner.facts, captioner.batcher.stats
        if args.task == "classify":
            from modelyard.runners.encoders import Classifier

            classifier = Classifier(args.model, tf)
            labels = {"labels": sorted(classifier.model.config.label2id)}
            return (
                {"/v1/classify": Endpoint(requests.ClassifyBody, classifier.classify)},
                labels,
                classifier.batcher.stats,
            )
        from modelyard.runners import textgen

        adapters = [textgen.AdapterSpec(**a) for a in json.loads(args.adapters)]
        cls = textgen.VisionGenerator if args.task == "vision" else textgen.Generator
        gen = cls(args.model, tf, adapters)
        routes = {
            "/v1/chat/completions": Endpoint(requests.ChatBody, partial(textgen.chat, gen)),
            "/v1/completions": Endpoint(requests.CompletionBody, partial(textgen.complete, gen)),
        }
        return routes, {"n_ctx": gen.n_ctx, "adapters": [a.name for a in adapters], **gen.facts}, dict
    if args.task == "upscale":
        from modelyard.backends.spandrel import SpandrelOptions
        from modelyard.runners.upscale import Upscaler

        upscaler = Upscaler(args.model, SpandrelOptions.model_validate(options))
        return {"/v1/images/upscale": Endpoint(requests.UpscaleBody, upscaler.upscale)}, upscaler.facts, dict
    if args.task == "fastwhisper":
        from modelyard.backends.faster_whisper import FasterWhisperOptions
        from modelyard.runners.fastwhisper import FastTranscriber

        fast = FastTranscriber(args.model, FasterWhisperOptions.model_validate(options))
        fast_routes = {
            "/v1/audio/transcriptions": Endpoint(requests.TranscriptionBody, fast.transcriptions),
            "/v1/audio/translations": Endpoint(requests.TranscriptionBody, fast.translations),
        }
        return fast_routes, fast.facts, dict
    if args.task == "piper":
        from modelyard.backends.piper import PiperOptions
        from modelyard.runners.synthesis import PiperSpeaker

        piper = PiperSpeaker(args.model, PiperOptions.model_validate(options))
        return {"/v1/audio/speech": Endpoint(requests.SpeechBody, piper.speech)}, piper.facts, dict
    if args.task == "face":
        from modelyard.backends.insightface import InsightFaceOptions
        from modelyard.runners.faces import FaceEmbedder

        faces = FaceEmbedder(args.model, InsightFaceOptions.model_validate(options))
        return {"/v1/embeddings": Endpoint(requests.FaceEmbeddingsBody, faces.embeddings)}, faces.facts, dict
    if args.task == "exl2":
        from modelyard.backends.exllamav2 import ExLlamaV2Options
        from modelyard.runners import textgen
        from modelyard.runners.exl2 import Exl2Generator

        exl2 = Exl2Generator(args.model, ExLlamaV2Options.model_validate(options))
        exl2_routes = {
            "/v1/chat/completions": Endpoint(requests.ChatBody, partial(textgen.chat, exl2)),
            "/v1/completions": Endpoint(requests.CompletionBody, partial(textgen.complete, exl2)),
        }
        return exl2_routes, {"n_ctx": exl2.n_ctx, **exl2.facts}, dict
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
    image_routes = {
        "/v1/images/generations": Endpoint(requests.ImageBody, images.generate),
        "/v1/images/edits": Endpoint(requests.ImageEditBody, images.edit),
        "/v1/videos/generations": Endpoint(requests.VideoBody, images.video),
    }
    image_info: dict[str, Any] = {"pipeline": type(images.pipe).__name__, "loras": images.lora_names}
    return image_routes, image_info, dict
