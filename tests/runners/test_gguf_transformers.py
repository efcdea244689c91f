"""A GGUF on the transformers runner (the text-generation-webui manual's llamacpp_HF): asked for
by the model's settings (a load never picks it by itself), transformers reads the file
dequantized with its tokenizer, and answers with the same greedy tokens as llama.cpp."""

from __future__ import annotations

from pathlib import Path

import pytest

import builders as b
from conftest import RunningServer

pytestmark = pytest.mark.engine

# a prompt whose 8 greedy tokens are whole characters: a lone byte past 0x7f decodes differently
# (llama.cpp drops it, transformers writes U+FFFD), the tokens being the same
BODY = {"model": "tiny", "prompt": "the cat sat", "max_tokens": 8, "temperature": 0}


def completion(server: RunningServer) -> tuple[str, int]:
    r = server.http.post("/v1/completions", json=BODY)
    assert r.status_code == 200, r.text
    answer = r.json()
    return answer["choices"][0]["text"], answer["usage"]["completion_tokens"]


def test_an_f16_gguf_answers_on_transformers_as_on_llama_cpp(server: RunningServer, tmp_path: Path) -> None:
    gguf = b.write_llama_gguf(tmp_path / "tiny" / "tiny.gguf", chat_template=b.CHAT_TEMPLATE, quant="F16")[0]
    assert server.http.post("/api/models", json={"path": str(gguf), "name": "tiny"}).status_code == 201
    loaded = server.http.post("/api/models/tiny/load", json={})
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["serving_backend"] in (
        "llama.cpp",
        "llama-cpp-python",
    )  # never transformers by itself
    on_llama, tokens = completion(server)
    assert tokens == 8
    assert server.http.post("/api/models/tiny/unload", json={}).status_code == 204

    settings = {"backend": "transformers", "options": {}, "replace": True}
    assert server.http.put("/api/models/tiny/settings", json=settings).status_code == 200
    loaded = server.http.post("/api/models/tiny/load", json={})
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["serving_backend"] == "transformers"
    assert completion(server) == (on_llama, 8)
