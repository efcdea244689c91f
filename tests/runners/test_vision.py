"""transformers image-text-to-text through the gateway: chat messages with image parts (a data
URL or a local file), answered as transformers answers in-process."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest

from builders import png_bytes
from conftest import RunningServer, serve

pytestmark = pytest.mark.engine


@pytest.fixture
def server(tmp_path: Path) -> Any:
    with serve(tmp_path / "home") as running:
        yield running


def local_answer(folder: Path, image: bytes, question: str, n: int) -> str:
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    messages = [{"role": "user", "content": [{"type": "text", "text": question}, {"type": "image"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=text, images=[Image.open(io.BytesIO(image)).convert("RGB")], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=n, do_sample=False)
    answer: str = processor.tokenizer.decode(out[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return answer


def ask(server: RunningServer, url: str, question: str = "what color is it?") -> Any:
    content = [{"type": "text", "text": question}, {"type": "image_url", "image_url": {"url": url}}]
    return server.http.post(
        "/v1/chat/completions",
        json={
            "model": "llava",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 8,
            "temperature": 0,
        },
    )


def test_chat_with_images(server: RunningServer, llava: Path, tmp_path: Path) -> None:
    model = server.http.post("/api/models", json={"path": str(llava), "name": "llava"}).json()
    assert model["category"] == "multimodal"
    assert server.http.post("/api/models/llava/load", json={}).status_code == 200
    red, blue = png_bytes((220, 20, 20)), png_bytes((20, 20, 220))
    r = ask(server, "data:image/png;base64," + base64.b64encode(red).decode())
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["choices"][0]["message"]["content"] == local_answer(llava, red, "what color is it?", 8)
    assert answer["usage"]["prompt_tokens"] >= 16  # the image's 16 patches are in the prompt
    on_disk = tmp_path / "blue.png"
    on_disk.write_bytes(blue)
    for url in (str(on_disk), on_disk.as_uri()):
        by_file = ask(server, url)
        assert by_file.status_code == 200, by_file.text
        assert by_file.json()["choices"][0]["message"]["content"] == local_answer(
            llava, blue, "what color is it?", 8
        )
    web = ask(server, "https://example.com/cat.png")
    assert web.status_code == 400
    assert "web URL" in web.json()["error"]["message"]
    broken = ask(server, "data:image/png;base64,bm90IGFuIGltYWdl")
    assert broken.status_code == 400
    assert "could not be read as an image" in broken.json()["error"]["message"]
    text_only = server.http.post(
        "/v1/chat/completions",
        json={"model": "llava", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4},
    )
    assert text_only.status_code == 200
