"""Speech to text on CTranslate2: a tiny Whisper converted with CTranslate2's converter, served by
faster-whisper on the runner, its answers compared with faster-whisper run in-process, through
the official openai client."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from conftest import RunningServer, serve
from torch_models import wav_bytes, write_tiny_whisper

pytestmark = pytest.mark.engine


TOKENS = 8  # a random model talks until it is stopped


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ctranslate2.converters import TransformersConverter

    root = tmp_path_factory.mktemp("ct2")
    whisper = write_tiny_whisper(root / "tiny-whisper")
    out = root / "tiny-whisper-ct2"
    TransformersConverter(str(whisper), copy_files=["tokenizer.json"]).convert(str(out))
    return out


@pytest.fixture(scope="module")
def server(converted: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(tmp_path_factory.mktemp("home")) as running:
        r = running.http.post("/api/models", json={"path": str(converted), "name": "fast"})
        assert r.status_code == 201, r.text
        settings = {"options": {"max_new_tokens": TOKENS}}
        assert running.http.put("/api/models/fast/settings", json=settings).status_code == 200
        assert running.http.post("/api/models/fast/load", json={}).status_code == 200
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def in_process(folder: Path, wav: bytes, **kwargs: Any) -> tuple[list[Any], Any]:
    """faster-whisper's segments for ``wav``, decoded as the runner decodes by default."""
    import soundfile
    from faster_whisper import WhisperModel

    samples, _ = soundfile.read(io.BytesIO(wav), dtype="float32")
    model = WhisperModel(str(folder), device="cpu", local_files_only=True)
    segments, info = model.transcribe(samples, beam_size=1, temperature=0.0, max_new_tokens=TOKENS, **kwargs)
    return list(segments), info


def test_a_ctranslate2_whisper_is_detected(server: RunningServer) -> None:
    model = server.http.get("/api/models/fast").json()
    assert (model["category"], model["format"], model["architecture"]) == (
        "speech-to-text",
        "ctranslate2",
        "whisper",
    )
    assert model["loaders"] == ["faster-whisper"]
    assert model["quantization"] == "F32"
    assert model["facts"]["multilingual"] is False  # a vocabulary of 400 tokens: English only, to CTranslate2


def test_transcripts_are_faster_whispers(client: openai.OpenAI, converted: Path) -> None:
    wav = wav_bytes(3.0)
    answer = client.audio.transcriptions.create(
        model="fast", file=("a.wav", wav, "audio/wav"), response_format="verbose_json"
    )
    segments, info = in_process(converted, wav)
    assert answer.text == "".join(s.text for s in segments).strip()
    assert answer.language == "english"
    assert answer.duration == pytest.approx(info.duration)
    got = [(s.start, s.end, s.text) for s in answer.segments or []]
    assert got == [(round(s.start, 3), round(s.end, 3), s.text.strip()) for s in segments]
    assert got  # the model said something

    srt = client.audio.transcriptions.create(
        model="fast", file=("a.wav", wav, "audio/wav"), response_format="srt"
    )
    first = segments[0]
    assert str(srt).startswith(f"1\n00:00:0{int(first.start)}")
    assert first.text.strip() in str(srt)


def translate(client: openai.OpenAI, **request: Any) -> Any:
    """The client's translations call (which this client version marks deprecated)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return client.audio.translations.create(**request)


def test_bad_audio_is_refused_and_the_engine_stays(server: RunningServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="is not audio this engine reads"):
        client.audio.transcriptions.create(model="fast", file=("x.wav", b"not audio", "audio/wav"))
    with pytest.raises(openai.BadRequestError, match="this model does not translate"):
        translate(client, model="fast", file=("a.wav", wav_bytes(1.0), "audio/wav"))
    with pytest.raises(openai.BadRequestError, match="this model hears one language"):
        client.audio.transcriptions.create(
            model="fast", file=("a.wav", wav_bytes(1.0), "audio/wav"), language="de"
        )
    (inst,) = server.http.get("/api/instances").json()
    assert inst["state"] == "running"


def test_a_truncated_model_bin_is_refused(converted: Path, tmp_path: Path) -> None:
    import shutil

    from modelyard.errors import MalformedFile
    from modelyard.formats.detect import inspect_path

    broken = tmp_path / "broken"
    shutil.copytree(converted, broken)
    data = (broken / "model.bin").read_bytes()
    (broken / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(MalformedFile, match="not a readable CTranslate2 model"):
        inspect_path(broken)
