"""The Ollama-compatible listener, driven by the official `ollama` Python client unmodified:
tags, show, ps, chat and generate (streaming and not), embed, keep_alive, errors in Ollama's
shape, and API keys on that listener."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

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


def test_chat_and_generate_load_the_model_and_stream(server: RunningServer, c: ollama.Client) -> None:
    assert c.ps().models == []
    options = {"num_predict": 3, "temperature": 0, "num_ctx": 256}
    chat = c.chat(model="tiny-chat", messages=[{"role": "user", "content": "hi"}], options=options)
    assert chat.done
    assert chat.message.role == "assistant"
    assert chat.eval_count == 3
    assert (chat.prompt_eval_count or 0) > 0
    (running,) = c.ps().models  # loaded on demand, as Ollama does
    assert running.model == "tiny-chat:latest"
    pieces = list(
        c.chat(model="tiny-chat", messages=[{"role": "user", "content": "hi"}], options=options, stream=True)
    )
    assert pieces[-1].done
    assert pieces[-1].done_reason == "length"
    assert pieces[-1].eval_count == 3
    assert not any(p.done for p in pieces[:-1])
    generated = c.generate(model="tiny-chat", prompt="one two", options=options, raw=True)
    assert generated.done
    assert generated.eval_count == 3
    streamed = list(c.generate(model="tiny-chat", prompt="one two", options=options, raw=True, stream=True))
    assert streamed[-1].done
    assert "".join(p.response for p in streamed) == "".join(p.response for p in streamed[:-1])


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


def test_embed_and_keep_alive(server: RunningServer, c: ollama.Client) -> None:
    out = c.embed(model="tiny-embed", input=["the quick brown fox", "a cat sat"])
    assert len(out.embeddings) == 2
    for vector in out.embeddings:
        assert len(vector) == 64
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-4)  # Ollama's unit length
    legacy = c.embeddings(model="tiny-embed", prompt="the quick brown fox")
    assert len(legacy.embedding) == 64
    assert {m.model for m in c.ps().models} == {"tiny-embed:latest"}
    # nothing to answer: Ollama's way to load a model (and, with keep_alive 0, to unload it)
    assert c.generate(model="tiny-chat").done_reason == "load"
    assert {m.model for m in c.ps().models} == {"tiny-embed:latest", "tiny-chat:latest"}
    c.generate(model="tiny-chat", keep_alive=0)
    for _ in range(50):  # the watcher unloads it within a quarter second
        if {m.model for m in c.ps().models} == {"tiny-embed:latest"}:
            break
        time.sleep(0.1)
    assert {m.model for m in c.ps().models} == {"tiny-embed:latest"}
    with pytest.raises(ollama.ResponseError) as e:
        c.chat(model="tiny-embed", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 400
    with pytest.raises(ollama.ResponseError) as e:
        c.generate(model="tiny-chat", prompt="x", keep_alive="soon")
    assert "keep_alive" in e.value.error


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
