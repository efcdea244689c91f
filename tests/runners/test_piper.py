"""Piper voices through the gateway: a tiny Piper voice (ONNX with Piper's inputs, and its
config) on the runner, its audio compared with piper-tts run in-process, through the official
openai client."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from conftest import RunningServer, serve
from torch_models import write_tiny_piper

pytestmark = pytest.mark.engine


TEXT = "Hello there. How are you today?"


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("piper")
    return {
        "duo": write_tiny_piper(root / "duo", speakers=["amy", "bob"]) / "voice.onnx",
        "solo": write_tiny_piper(root / "solo", seed=1),  # a folder
    }


@pytest.fixture(scope="module")
def server(voices: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(tmp_path_factory.mktemp("home"), one_per_category=False) as running:
        for name, path in voices.items():
            r = running.http.post("/api/models", json={"path": str(path), "name": name})
            assert r.status_code == 201, r.text
            assert running.http.post(f"/api/models/{name}/load", json={}).status_code == 200
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def in_process(model: Path, text: str, speaker: int | None, length: float = 1.0) -> Any:
    """piper-tts's samples for ``text``, sentence after sentence."""
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(model)
    chunks = voice.synthesize(text, syn_config=SynthesisConfig(speaker_id=speaker, length_scale=length))
    return np.concatenate([c.audio_float_array for c in chunks])


def decoded(audio: bytes) -> tuple[Any, int]:
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(audio), dtype="float32")
    return samples, rate


def test_a_piper_voice_is_detected_from_its_config(server: RunningServer) -> None:
    duo = server.http.get("/api/models/duo").json()
    assert (duo["category"], duo["format"], duo["architecture"]) == ("text-to-speech", "onnx", "piper")
    assert duo["loaders"] == ["piper"]
    assert duo["facts"]["speakers"] == ["amy", "bob"]
    assert duo["facts"]["sample_rate"] == 16000
    solo = server.http.get("/api/models/solo").json()
    assert (solo["category"], solo["architecture"], solo["facts"]["speakers"]) == (
        "text-to-speech",
        "piper",
        1,
    )
    assert server.http.get("/v1/audio/voices", params={"model": "duo"}).json()["voices"] == ["amy", "bob"]


def test_speech_is_pipers_audio(client: openai.OpenAI, voices: dict[str, Path]) -> None:
    wav = client.audio.speech.create(model="duo", voice="bob", input=TEXT, response_format="wav").content
    samples, rate = decoded(wav)
    expected = in_process(voices["duo"], TEXT, 1)
    assert rate == 16000
    assert len(samples) == len(expected)
    assert np.abs(samples - expected).max() < 2 / 32767  # 16-bit rounding only
    amy = client.audio.speech.create(model="duo", voice="amy", input=TEXT, response_format="wav").content
    assert amy != wav
    fast = client.audio.speech.create(model="duo", voice="bob", input=TEXT, response_format="wav", speed=2.0)
    assert len(decoded(fast.content)[0]) == len(in_process(voices["duo"], TEXT, 1, length=0.5))

    solo = client.audio.speech.create(model="solo", voice="alloy", input=TEXT, response_format="flac").content
    got, _ = decoded(solo)
    assert np.abs(got - in_process(voices["solo"] / "voice.onnx", TEXT, None)).max() < 2 / 32767


def test_bad_piper_requests_are_refused_clearly(server: RunningServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="no voice 'carl': this model's voices are amy, bob"):
        client.audio.speech.create(model="duo", voice="carl", input=TEXT)
    with pytest.raises(openai.BadRequestError, match="nothing this voice can say"):
        client.audio.speech.create(model="duo", voice="amy", input="   ...   ")
    states = {i["model"]: i["state"] for i in server.http.get("/api/instances").json()}
    assert states == {"duo": "running", "solo": "running"}


def test_a_broken_piper_config_is_refused(tmp_path: Path) -> None:
    import json

    from modelyard.errors import MalformedFile
    from modelyard.formats.detect import inspect_path

    voice = write_tiny_piper(tmp_path / "voice") / "voice.onnx"
    config = json.loads(Path(f"{voice}.json").read_text())
    Path(f"{voice}.json").write_text(json.dumps({**config, "num_speakers": "two", "language": "en"}))
    with pytest.raises(MalformedFile, match="num_speakers and speaker_id_map must hold numbers"):
        inspect_path(voice)
    Path(f"{voice}.json").write_text("{not json")
    with pytest.raises(MalformedFile, match="not valid JSON"):
        inspect_path(voice)
