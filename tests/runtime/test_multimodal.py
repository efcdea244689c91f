"""A multimodal GGUF with its mmproj on llama.cpp: chat messages with images, as data URLs or as
local files (which the gateway inlines, since llama-server takes images only inline)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from builders import CHAT_TEMPLATE, png_bytes, write_llama_gguf, write_mmproj_gguf
from conftest import RunningServer

pytestmark = pytest.mark.engine


def chat(server: RunningServer, content: Any) -> Any:
    return server.http.post(
        "/v1/chat/completions",
        json={
            "model": "tiny-vision",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 6,
            "temperature": 0,
        },
    )


def test_chat_with_images_on_llama_cpp(server: RunningServer, tmp_path: Path) -> None:
    from conftest import llama_server

    folder = tmp_path / "models"
    write_llama_gguf(folder / "tiny-vision.gguf", chat_template=CHAT_TEMPLATE)
    write_mmproj_gguf(folder / "mmproj-tiny-vision.gguf")
    model = server.http.post("/api/models", json={"path": str(folder / "tiny-vision.gguf")}).json()
    assert model["category"] == "multimodal"
    assert [c["role"] for c in model["components"]] == ["mmproj"]
    loaded = server.http.post("/api/models/tiny-vision/load", json={})
    if llama_server() is None:  # llama-cpp-python's server: refused, and it says why
        assert loaded.status_code == 400
        assert "cannot serve this multimodal model" in loaded.json()["error"]["message"]
        return
    assert loaded.status_code == 200, loaded.text
    image = png_bytes((200, 30, 30))
    question = [{"type": "text", "text": "what is in the picture?"}]
    inline = chat(
        server,
        [
            *question,
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(image).decode()},
            },
        ],
    )
    assert inline.status_code == 200, inline.text
    text_only = chat(server, question)
    assert text_only.status_code == 200, text_only.text
    # the 32x32 projector turns an image into 16 tokens of the prompt
    assert inline.json()["usage"]["prompt_tokens"] >= text_only.json()["usage"]["prompt_tokens"] + 16
    on_disk = tmp_path / "red.png"
    on_disk.write_bytes(image)
    for url in (str(on_disk), on_disk.as_uri()):
        by_file = chat(server, [*question, {"type": "image_url", "image_url": {"url": url}}])
        assert by_file.status_code == 200, by_file.text
        for key in ("prompt_tokens", "completion_tokens"):
            assert by_file.json()["usage"][key] == inline.json()["usage"][key]
        assert by_file.json()["choices"][0]["message"] == inline.json()["choices"][0]["message"]
    missing = chat(
        server, [*question, {"type": "image_url", "image_url": {"url": str(tmp_path / "nope.png")}}]
    )
    assert missing.status_code == 400
    assert "cannot read the image" in missing.json()["error"]["message"]
