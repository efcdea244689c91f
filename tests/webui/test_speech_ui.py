"""The playground's speech modes in Chromium: speech to text from an uploaded file and from a
recording (Chromium's fake microphone), transcribed as the API transcribes the same audio; and
text to speech, played back as the API speaks it."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from browser import Shots, browsing
from conftest import RunningServer, serve
from torch_models import wav_bytes, write_tiny_vits, write_tiny_whisper
from webui.conftest import ARGS, CHROMIUM

pytestmark = pytest.mark.browser


MICROPHONE = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def transcribe(page: Page) -> None:
    page.get_by_role("button", name="Transcribe", exact=True).click()
    expect(page.get_by_label("Segments").locator("tr").first).to_be_visible(timeout=60_000)


def test_playground_speech_to_text_and_text_to_speech(browser: Browser, tmp_path: Path) -> None:
    whisper = write_tiny_whisper(tmp_path / "tiny-whisper")
    vits = write_tiny_vits(tmp_path / "tiny-vits")
    with serve(tmp_path / "home") as server:
        api = server.http
        assert api.post("/api/models", json={"path": str(whisper), "name": "whisper"}).status_code == 201
        api.put("/api/models/whisper/settings", json={"options": {"max_new_tokens": 8}}).raise_for_status()
        assert api.post("/api/models/whisper/load", json={}).status_code == 200
        assert api.post("/api/models", json={"path": str(vits), "name": "vits"}).status_code == 201
        assert api.post("/api/models/vits/load", json={}).status_code == 200
        # a second Chromium from the session's Playwright, with a fake microphone
        hearing = browser.browser_type.launch(executable_path=CHROMIUM, args=[*ARGS, *MICROPHONE])
        try:
            check_the_page(hearing, server, tmp_path)
        finally:
            hearing.close()


def check_the_page(browser: Browser, server: RunningServer, tmp_path: Path) -> None:
    with browsing(browser, server.url) as page:
        shots = Shots(page, "test_playground_speech_to_text_and_text_to_speech")
        page.goto("/#/playground")
        page.get_by_role("tab", name="Speech to text").click()
        expect(page.get_by_label("Model", exact=True)).to_have_value("whisper")

        # A file: the transcript and segments the API gives for it.
        wav = wav_bytes(3.0)
        page.get_by_label("Audio file").set_input_files(
            {"name": "tone.wav", "mimeType": "audio/wav", "buffer": wav}
        )
        expect(page.get_by_label("Input audio")).to_be_visible()
        page.get_by_label("Language").fill("en")
        transcribe(page)
        form = {"model": "whisper", "language": "en", "response_format": "verbose_json"}
        r = server.http.post("/v1/audio/transcriptions", data=form, files={"file": ("tone.wav", wav)})
        expected = r.json()
        expect(page.get_by_test_id("transcript")).to_have_text(expected["text"])
        cells = page.get_by_label("Segments").locator("tr td:nth-child(2)")
        assert cells.all_inner_texts() == [s["text"] for s in expected["segments"]]
        expect(page.get_by_text("english, 3.0 s")).to_be_visible()
        shots("speech-file")

        # A recording from the (fake) microphone, sent as WAV.
        first = page.get_by_label("Input audio").get_attribute("src") or ""
        page.get_by_role("button", name="Record").click()
        page.wait_for_timeout(1500)
        page.get_by_role("button", name="Stop recording").click()
        expect(page.get_by_label("Input audio")).not_to_have_attribute("src", first)
        transcribe(page)
        expect(page.locator(".heard .muted")).not_to_have_text("english, 3.0 s", timeout=60_000)
        heard = page.locator(".heard .muted").inner_text()
        assert heard.startswith("english, ")
        assert 1.0 <= float(heard.removeprefix("english, ").removesuffix(" s")) <= 3.0
        shots("speech-recording")

        # Text to speech: the audio the API makes for the same text, voice and speed.
        page.get_by_role("tab", name="Text to speech").click()
        expect(page.get_by_label("Model", exact=True)).to_have_value("vits")
        page.get_by_label("Text", exact=True).fill("good evening")
        voices = page.get_by_label("Voice")
        expect(voices.locator("option")).to_have_text(["0", "1"])  # the model's speakers, from the API
        voices.select_option("1")
        page.get_by_label("Speed").fill("1.5")
        page.get_by_role("button", name="Speak").click()
        played = page.get_by_label("Speech", exact=True)
        expect(played).to_be_visible(timeout=60_000)
        body = {
            "model": "vits",
            "input": "good evening",
            "voice": "1",
            "speed": 1.5,
            "response_format": "wav",
        }
        wav = server.http.post("/v1/audio/speech", json=body).content
        assert played.get_attribute("data-bytes") == str(len(wav))
        duration = page.evaluate(
            "() => new Promise(ok => { const a = document.querySelector('audio[aria-label=Speech]');"
            " a.duration ? ok(a.duration) : a.addEventListener('loadedmetadata', () => ok(a.duration)); })"
        )
        assert duration == (len(wav) - 44) / 2 / 16000
        shots("text-to-speech")
