"""The Ollama-compatible listener on real engines, driven by the official `ollama` Python client
unmodified: tags and show of GGUF models, a generate that loads llama-server on demand and gives
the OpenAI route's greedy text, errors in Ollama's shape, and API keys on that listener. Chat,
generate and embed streaming and not, keep_alive and the bodies the engine gets run on a fake
engine (tests/gateway/test_dialects.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import builders as b
import ollama
from conftest import RunningServer, free_port, serve

pytestmark = pytest.mark.engine


@pytest.fixture
def server(tmp_path: Path, tiny_models: dict[str, Path]) -> Iterator[RunningServer]:
    port = free_port()
    with serve(tmp_path / "home", ollama_port=port, one_per_category=False, exclusive=[]) as running:
        for name in ("tiny-chat", "tiny-embed"):
            r = running.http.post("/api/models", json={"path": str(tiny_models[name]), "name": name})
            assert r.status_code == 201, r.text
        running.ollama_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
        yield running


@contextmanager
def connected(server: RunningServer, key: str | None = None) -> Iterator[ollama.Client]:
    """The official client, as an application makes it (closed after)."""
    headers = {"Authorization": f"Bearer {key}"} if key else None
    c = ollama.Client(host=server.ollama_url, headers=headers)  # type: ignore[attr-defined]
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def c(server: RunningServer) -> Iterator[ollama.Client]:
    with connected(server) as opened:
        yield opened


def test_tags_show_and_version(server: RunningServer, c: ollama.Client) -> None:
    names = sorted(m.model for m in c.list().models)
    assert names == ["tiny-chat:latest", "tiny-embed:latest"]
    shown = c.show("tiny-chat")
    assert shown.details is not None
    assert shown.details.format == "gguf"
    assert shown.capabilities == ["completion"]
    assert c.show("tiny-embed:latest").capabilities == ["embedding"]
    assert httpx.get(server.ollama_url + "/api/version").json()["version"]  # type: ignore[attr-defined]
    assert httpx.get(server.ollama_url + "/").text == "Ollama is running"  # type: ignore[attr-defined]
    with pytest.raises(ollama.ResponseError) as e:
        c.show("no-such-model")
    assert e.value.status_code == 404
    assert "no-such-model" in e.value.error
    # the listener is the Ollama API only; modelyard's own stays on its port
    assert httpx.get(server.ollama_url + "/api/models").status_code == 404  # type: ignore[attr-defined]


def test_greedy_text_equals_the_openai_route(server: RunningServer) -> None:
    body = {"model": "tiny-chat", "prompt": "x y", "raw": True, "stream": False,
            "options": {"num_predict": 4, "temperature": 0}}  # fmt: skip
    via_ollama = httpx.post(server.ollama_url + "/api/generate", json=body, timeout=120)  # type: ignore[attr-defined]
    assert via_ollama.status_code == 200, via_ollama.text
    via_openai = server.http.post(
        "/v1/completions", json={"model": "tiny-chat", "prompt": "x y", "max_tokens": 4, "temperature": 0}
    )
    assert via_ollama.json()["response"] == via_openai.json()["choices"][0]["text"]
    assert via_ollama.json()["eval_count"] == 4


def test_keys_on_the_ollama_listener(server: RunningServer, c: ollama.Client) -> None:
    admin = server.http.post("/api/keys", json={"name": "admin", "scope": "admin"}).json()["secret"]
    user = server.http.post(
        "/api/keys", json={"name": "app", "scope": "inference", "models": ["tiny-chat"]},
        headers={"Authorization": f"Bearer {admin}"},
    ).json()["secret"]  # fmt: skip
    with pytest.raises(ollama.ResponseError) as e:
        c.list()
    assert e.value.status_code == 401
    with connected(server, user) as keyed:
        assert [m.model for m in keyed.list().models] == ["tiny-chat:latest"]  # what this key may use
        with pytest.raises(ollama.ResponseError) as e:
            keyed.embed(model="tiny-embed", input="x")
        assert e.value.status_code == 403
    assert httpx.get(server.ollama_url + "/api/version").status_code == 200  # type: ignore[attr-defined]


def test_num_ctx_is_each_requests_context(server: RunningServer, c: ollama.Client, tmp_path: Path) -> None:
    """num_ctx is what one request may hold, as in Ollama: on llama-server's two slots, which
    split n_ctx, asking 512 grows n_ctx to 1024 (the admin's request reloads it), and the
    running model reports 512; a chat of about 300 tokens, refused before, then fits."""
    path = b.write_llama_gguf(tmp_path / "long-chat.gguf", chat_template=b.CHAT_TEMPLATE, ctx=2048)[0]
    assert server.http.post("/api/models", json={"path": str(path), "name": "long-chat"}).status_code == 201
    r = server.http.put("/api/models/long-chat/settings", json={"options": {"n_ctx": 512, "parallel": 2}})
    assert r.status_code == 200, r.text
    long = [{"role": "user", "content": "the cat sat on the mat " * 13}]
    with pytest.raises(ollama.ResponseError) as refused:  # each slot holds 256
        c.chat("long-chat", messages=long, options={"num_predict": 2})
    assert refused.value.status_code == 400
    (running,) = c.ps().models
    assert running.context_length == 256
    answer = c.chat("long-chat", messages=long, options={"num_predict": 2, "num_ctx": 512})
    assert answer.done
    assert answer.prompt_eval_count is not None
    assert 256 < answer.prompt_eval_count < 512
    assert server.http.get("/api/models/long-chat/settings").json()["saved"]["n_ctx"] == 1024
    (running,) = c.ps().models
    assert running.context_length == 512
