"""Fixtures for serving tests: tiny GGUF chat and embedding models, and a helper to import and
load through the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

import builders as b
from conftest import RunningServer

TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serving")
    paths = {
        "tiny-chat": b.write_llama_gguf(root / "a" / "tiny-chat.gguf", chat_template=TEMPLATE)[0],
        "tiny-chat-b": b.write_llama_gguf(root / "b" / "tiny-chat-b.gguf", chat_template=TEMPLATE)[0],
        "tiny-embed": b.write_llama_gguf(root / "e" / "tiny-embed.gguf", pooling=1)[0],
        "tiny-lora": b.write_lora_gguf(root / "a" / "tiny-lora.gguf"),
    }
    return paths


def add(server: RunningServer, path: Path, **body: object) -> dict[str, object]:
    r = server.http.post("/api/models", json={"path": str(path), **body})
    assert r.status_code == 201, r.text
    result: dict[str, object] = r.json()
    return result


@asynccontextmanager
async def generating(http: httpx.AsyncClient, body: dict[str, object]) -> AsyncIterator[AsyncIterator[str]]:
    """A streaming completion that has started to generate (it holds a slot) while inside."""
    async with http.stream("POST", "/v1/completions", json=body) as response:
        assert response.status_code == 200
        lines = response.aiter_lines()  # keep a reference: a collected iterator closes the stream
        await lines.__anext__()
        yield lines


def load(server: RunningServer, name: str, **body: object) -> dict[str, object]:
    r = server.http.post(f"/api/models/{name}/load", json=body)
    assert r.status_code == 200, r.text
    result: dict[str, object] = r.json()
    return result
