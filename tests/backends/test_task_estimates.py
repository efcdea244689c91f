"""Memory estimates of the engines that hold their files as they are: upscalers, face packs,
Piper voices, CTranslate2 Whispers. Each counts its files, its working memory and its process,
and a load that does not fit is told so before anything starts."""

from __future__ import annotations

from pathlib import Path

from modelyard.backends.faster_whisper import FasterWhisperOptions
from modelyard.backends.insightface import InsightFaceOptions
from modelyard.backends.piper import PiperOptions
from modelyard.backends.registry import Backends
from modelyard.backends.spandrel import SpandrelOptions
from modelyard.catalog.records import Model, ModelFile
from modelyard.config import Settings

MiB, GiB = 1 << 20, 1 << 30


def model(category: str, fmt: str, size: int) -> Model:
    return Model(name="m", category=category, format=fmt, path="/x", files=[ModelFile("/x", size)])


def test_an_upscalers_estimate_is_its_weights_and_a_tiles_activations(tmp_path: Path) -> None:
    backend = Backends.from_settings(Settings(home=tmp_path)).get("spandrel")
    weights = 64 * MiB
    fit = backend.fit(
        model("upscale", "safetensors", weights), SpandrelOptions(tile_size=256), None, 8 * GiB, []
    )
    assert fit is not None
    assert fit.fits
    ram = fit.estimate.ram
    assert ram.weights == weights
    assert ram.compute == 2 * 64 * (4 * 256) ** 2 * 4  # 64 channels at the 4x output, twice
    bigger = backend.fit(
        model("upscale", "safetensors", weights), SpandrelOptions(tile_size=1024), None, 8 * GiB, []
    )
    assert bigger is not None
    assert bigger.estimate.ram.compute == 16 * ram.compute
    assert not bigger.fits  # 8 GiB of activations for 1024-pixel tiles: more than 8 GiB free
    on_gpu = backend.fit(
        model("upscale", "safetensors", weights), SpandrelOptions(), None, 8 * GiB, [24 * GiB]
    )
    assert on_gpu is not None
    assert on_gpu.estimate.vram[0].weights == weights
    assert on_gpu.estimate.ram.weights == 0


def test_onnx_and_ctranslate2_engines_count_their_files_and_work(tmp_path: Path) -> None:
    registry = Backends.from_settings(Settings(home=tmp_path))
    faces = registry.get("insightface").fit(
        model("face", "onnx", 300 * MiB), InsightFaceOptions(), None, 4 * GiB, []
    )
    voice = registry.get("piper").fit(
        model("text-to-speech", "onnx", 60 * MiB), PiperOptions(), None, 4 * GiB, []
    )
    whisper = registry.get("faster-whisper").fit(
        model("speech-to-text", "ctranslate2", 1500 * MiB),
        FasterWhisperOptions(batch_size=4),
        None,
        2 * GiB,
        [],
    )
    assert faces is not None
    assert voice is not None
    assert whisper is not None
    assert faces.fits
    assert voice.fits
    assert faces.estimate.ram.weights == 300 * MiB
    assert faces.estimate.ram.compute == 64 * 640 * 640 * 16
    assert voice.estimate.ram.compute == 2 * 60 * MiB + 64 * MiB  # a sentence: its activations and audio
    assert whisper.estimate.ram.compute == 4 * 256 * MiB
    assert not whisper.fits  # 1.5 GiB of weights and 1 GiB of batched chunks in 2 GiB free
