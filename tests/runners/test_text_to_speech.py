"""Text to speech through the gateway: a tiny VITS on the runner, its audio compared with what
transformers' pipeline makes in-process, through the official openai client."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from conftest import RunningServer, serve
from torch_models import write_tiny_vits

pytestmark = pytest.mark.engine


TEXT = "hello there, how are you today?"


@pytest.fixture(scope="module")
def vits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_vits(tmp_path_factory.mktemp("tts") / "tiny-vits")


@pytest.fixture(scope="module")
def server(vits: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(tmp_path_factory.mktemp("home")) as running:
        model = running.http.post("/api/models", json={"path": str(vits), "name": "vits"}).json()
        assert model["category"] == "text-to-speech", model
        r = running.http.post("/api/models/vits/load", json={})
        assert r.status_code == 200, r.text
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def in_process(vits: Path, text: str, speaker: int) -> tuple[Any, int]:
    """The pipeline's waveform for ``text`` with the runner's seed (0)."""
    import torch
    from transformers import pipeline

    pipe = pipeline("text-to-audio", model=str(vits), device="cpu")
    torch.manual_seed(0)
    found = pipe(text, forward_params={"speaker_id": speaker})
    return found["audio"].reshape(-1), int(found["sampling_rate"])


def decoded(audio: bytes) -> tuple[Any, int]:
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(audio), dtype="float32")
    return samples, rate


def test_speech_is_the_pipelines_audio(client: openai.OpenAI, vits: Path) -> None:
    wav = client.audio.speech.create(model="vits", voice="1", input=TEXT, response_format="wav").content
    samples, rate = decoded(wav)
    expected, expected_rate = in_process(vits, TEXT, 1)
    assert rate == expected_rate == 16000
    assert len(samples) == len(expected)
    assert np.abs(samples - np.clip(expected, -1, 1)).max() < 2 / 32767  # 16-bit rounding only
    again = client.audio.speech.create(model="vits", voice="1", input=TEXT, response_format="wav").content
    assert again == wav  # the same text, voice and speed: the same audio
    other = client.audio.speech.create(model="vits", voice="0", input=TEXT, response_format="wav").content
    assert other != wav

    fast = client.audio.speech.create(model="vits", voice="1", input=TEXT, response_format="wav", speed=2.0)
    assert len(decoded(fast.content)[0]) < len(samples)  # twice the speaking rate: shorter

    for fmt, kind in (("flac", "audio/flac"), ("mp3", "audio/mpeg"), ("opus", "audio/ogg")):
        answer = client.audio.speech.with_raw_response.create(
            model="vits",
            voice="1",
            input=TEXT,
            response_format=fmt,  # type: ignore[arg-type]
        )
        assert answer.headers["content-type"] == kind
        got, got_rate = decoded(answer.content)
        assert got_rate == 16000
        assert abs(len(got) - len(samples)) <= 2048  # mp3 and opus pad a frame or so
    pcm = client.audio.speech.create(model="vits", voice="1", input=TEXT, response_format="pcm").content
    assert len(pcm) // 2 == pytest.approx(len(samples) * 24000 / 16000, abs=2)  # 24 kHz, 16-bit


def test_bad_speech_requests_are_refused_clearly(server: RunningServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="no voice 'alloy': this model's voices are 0, 1"):
        client.audio.speech.create(model="vits", voice="alloy", input=TEXT)
    with pytest.raises(openai.BadRequestError, match="aac is not offered"):
        client.audio.speech.create(model="vits", voice="0", input=TEXT, response_format="aac")
    r = server.http.post("/v1/audio/speech", json={"model": "vits", "voice": "0", "input": ""})
    assert r.status_code == 400
    (inst,) = server.http.get("/api/instances").json()
    assert inst["state"] == "running"


def test_voices_are_listed_per_model(server: RunningServer) -> None:
    r = server.http.get("/v1/audio/voices", params={"model": "vits"})
    assert r.status_code == 200, r.text
    assert r.json() == {"model": "vits", "voices": ["0", "1"]}
    assert server.http.get("/v1/audio/voices", params={"model": "nothing-such"}).status_code == 404
    r = server.http.get("/v1/audio/voices")
    assert r.status_code == 400
    assert "model" in r.json()["error"]["message"]
