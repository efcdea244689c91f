"""Speech to text through the gateway: a tiny Whisper on the runner, answered as transformers'
own speech recognition pipeline answers in-process, through the official openai client."""

from __future__ import annotations

import concurrent.futures
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import RunningServer, serve
from torch_models import wav_bytes, write_tiny_whisper

pytestmark = pytest.mark.engine


TOKENS = 8  # per chunk: the random model would talk until 448


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_whisper(tmp_path_factory.mktemp("speech") / "tiny-whisper")


@pytest.fixture(scope="module")
def server(whisper: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(tmp_path_factory.mktemp("home")) as running:
        model = running.http.post("/api/models", json={"path": str(whisper), "name": "whisper"}).json()
        assert model["category"] == "speech-to-text", model
        options = {"options": {"max_new_tokens": TOKENS}}
        running.http.put("/api/models/whisper/settings", json=options).raise_for_status()
        r = running.http.post("/api/models/whisper/load", json={})
        assert r.status_code == 200, r.text
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def pipe(whisper: Path) -> Any:
    from transformers import pipeline

    return pipeline("automatic-speech-recognition", model=str(whisper), device="cpu")


def in_process(pipe: Any, wav: bytes, stamps: bool | str = False, **generate: Any) -> dict[str, Any]:
    """What transformers' pipeline answers for ``wav`` on its own."""
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    kwargs: dict[str, Any] = {"chunk_length_s": 30, "batch_size": 1}
    if stamps:
        kwargs["return_timestamps"] = stamps
    with warnings.catch_warnings():  # word times over a token or two: torch warns of its std()
        warnings.filterwarnings("ignore", "std\\(\\): degrees of freedom", UserWarning)
        found: dict[str, Any] = pipe(
            {"raw": samples, "sampling_rate": rate},
            generate_kwargs={"max_new_tokens": TOKENS, "task": "transcribe", **generate},
            **kwargs,
        )
    return found


def translate(client: openai.OpenAI, **request: Any) -> Any:
    """The client's translations call (which this client version marks deprecated)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return client.audio.translations.create(**request)


def test_transcriptions_answer_as_transformers_does(client: openai.OpenAI, pipe: Any) -> None:
    wav = wav_bytes(4.0)
    plain = client.audio.transcriptions.create(
        model="whisper", file=("tone.wav", wav, "audio/wav"), language="en"
    )
    expected = in_process(pipe, wav, language="en")
    assert plain.text == expected["text"].strip()

    verbose = client.audio.transcriptions.create(
        model="whisper",
        file=("tone.wav", wav, "audio/wav"),
        language="en",
        response_format="verbose_json",
        timestamp_granularities=["segment", "word"],
    )
    timed = in_process(pipe, wav, stamps=True, language="en")
    assert verbose.language == "english"
    assert verbose.duration == pytest.approx(4.0)
    assert verbose.text == timed["text"].strip()
    segments = verbose.segments or []
    assert [s.text for s in segments] == [c["text"].strip() for c in timed["chunks"]]
    assert all(0 <= s.start <= s.end <= 4.0 for s in segments)
    words = in_process(pipe, wav, stamps="word", language="en")["chunks"]
    assert [w.word for w in verbose.words or []] == [w["text"].strip() for w in words]
    assert [w.start for w in verbose.words or []] == [round(w["timestamp"][0], 3) for w in words]

    srt = client.audio.transcriptions.create(
        model="whisper", file=("tone.wav", wav, "audio/wav"), language="en", response_format="srt"
    )
    assert isinstance(srt, str)
    assert srt.startswith("1\n00:00:00,000 --> ")
    assert all(s.text in srt for s in segments)
    vtt = client.audio.transcriptions.create(
        model="whisper", file=("tone.wav", wav, "audio/wav"), language="en", response_format="vtt"
    )
    assert isinstance(vtt, str)
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ")
    text = client.audio.transcriptions.create(
        model="whisper", file=("tone.wav", wav, "audio/wav"), language="en", response_format="text"
    )
    assert text == expected["text"].strip() + "\n"
    prompted = client.audio.transcriptions.create(
        model="whisper", file=("tone.wav", wav, "audio/wav"), language="en", prompt="1984"
    )  # a form's values are text: a prompt of digits stays a prompt
    import torch

    ids = torch.tensor(pipe.tokenizer.get_prompt_ids("1984"))
    assert prompted.text == in_process(pipe, wav, language="en", prompt_ids=ids)["text"].strip()


def test_translations_and_long_audio_in_chunks(client: openai.OpenAI, pipe: Any) -> None:
    wav = wav_bytes(3.0, rate=44100)  # resampled to the model's 16 kHz
    translated = translate(client, model="whisper", file=("tone.wav", wav, "audio/wav"))
    assert translated.text == in_process(pipe, at_16k(wav), task="translate")["text"].strip()
    long = wav_bytes(70.0)  # three chunks of 30 s
    answer = client.audio.transcriptions.create(
        model="whisper", file=("long.wav", long, "audio/wav"), language="de", response_format="verbose_json"
    )
    expected = in_process(pipe, long, stamps=True, language="de")
    assert answer.duration == pytest.approx(70.0)
    assert answer.text == expected["text"].strip()
    assert answer.language == "german"

    short = wav_bytes(3.0)  # no language given: the one Whisper detects, by its name
    heard = client.audio.transcriptions.create(
        model="whisper", file=("a.wav", short, "audio/wav"), response_format="verbose_json"
    )
    assert heard.language == detected(pipe, short)


def at_16k(wav: bytes) -> bytes:
    """``wav`` resampled to 16 kHz (polyphase, as any careful resampler does)."""
    import soundfile
    from scipy.signal import resample_poly

    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    out = io.BytesIO()
    soundfile.write(
        out, resample_poly(samples, 160, rate // 100).astype("float32"), 16000, format="WAV", subtype="FLOAT"
    )
    return out.getvalue()


def detected(pipe: Any, wav: bytes) -> str:
    """The language Whisper detects in ``wav``, in-process, by the name OpenAI answers with."""
    import soundfile
    import torch
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    features = pipe.feature_extractor(samples, sampling_rate=rate, return_tensors="pt").input_features
    with torch.inference_mode():
        token = pipe.tokenizer.convert_ids_to_tokens(int(pipe.model.detect_language(features)[0]))
    return str(LANGUAGES[token.strip("<|>")])


def test_concurrent_requests_run_as_one_batch(server: RunningServer, client: openai.OpenAI) -> None:
    waves = [wav_bytes(2.0 + i / 2, hz=300 + 100 * i) for i in range(6)]

    def ask(wav: bytes) -> str:
        return client.audio.transcriptions.create(
            model="whisper", file=("a.wav", wav, "audio/wav"), language="en"
        ).text

    alone = [ask(w) for w in waves]
    (inst,) = server.http.get("/api/instances").json()
    before = httpx.get(inst["url"] + "/health").json()["stats"]
    with concurrent.futures.ThreadPoolExecutor(len(waves)) as pool:
        together = list(pool.map(ask, waves))
    after = httpx.get(inst["url"] + "/health").json()["stats"]
    assert together == alone  # a batch answers each as it would alone
    assert after["items"] - before["items"] == len(waves)
    assert after["batches"] - before["batches"] < len(waves)  # some shared a batch


def test_bad_audio_requests_are_refused_clearly(server: RunningServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="is not audio this engine reads"):
        client.audio.transcriptions.create(model="whisper", file=("x.wav", b"not audio", "audio/wav"))
    with pytest.raises(openai.BadRequestError, match="translations take no 'language'"):
        translate(
            client,
            model="whisper",
            file=("a.wav", wav_bytes(1.0), "audio/wav"),
            extra_body={"language": "de"},
        )
    r = server.http.post("/v1/audio/transcriptions", data={"model": "whisper"}, files={"x": ("a", b"1")})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "the form needs model and file"
    r = server.http.post("/v1/audio/transcriptions", json={"model": "whisper", "file": "x"})
    assert r.status_code == 415 or r.status_code == 400
    assert server.http.get("/api/health").status_code == 200
    (inst,) = server.http.get("/api/instances").json()
    assert inst["state"] == "running"
