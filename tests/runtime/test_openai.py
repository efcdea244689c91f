"""The official openai client against the gateway: chat, completions, embeddings, streaming and
not, on a tiny generated GGUF and on the real gemma-3-270m."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from conftest import RunningServer
from runtime.conftest import add, load

pytestmark = pytest.mark.engine


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_tiny_chat_and_completions(
    server: RunningServer, client: openai.OpenAI, tiny_models: dict[str, Path]
) -> None:
    add(server, tiny_models["tiny-chat"])
    load(server, "tiny-chat", replicas=1)
    ids = [m.id for m in client.models.list().data]
    assert "tiny-chat" in ids
    chat = client.chat.completions.create(
        model="tiny-chat", messages=[{"role": "user", "content": "hello"}], max_tokens=8, temperature=0
    )
    assert chat.model == "tiny-chat"
    assert chat.choices[0].finish_reason in ("length", "stop")
    assert chat.usage is not None
    assert chat.usage.completion_tokens > 0
    pieces = [
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="tiny-chat", messages=[{"role": "user", "content": "hello"}], max_tokens=8, stream=True
        )
        if c.choices
    ]
    assert len(pieces) >= 2
    text = client.completions.create(model="tiny-chat", prompt="hello world", max_tokens=6, temperature=0)
    assert text.choices[0].text is not None
    streamed = list(client.completions.create(model="tiny-chat", prompt="hello", max_tokens=6, stream=True))
    assert len(streamed) >= 2


def test_embeddings(server: RunningServer, client: openai.OpenAI, tiny_models: dict[str, Path]) -> None:
    model = add(server, tiny_models["tiny-embed"])
    assert model["category"] == "embedding"
    load(server, "tiny-embed")
    result = client.embeddings.create(model="tiny-embed", input=["hello world", "the model"])
    assert len(result.data) == 2
    assert len(result.data[0].embedding) == 64  # the tiny model's embedding length
    with pytest.raises(openai.BadRequestError, match="does not serve /v1/chat"):
        client.chat.completions.create(model="tiny-embed", messages=[{"role": "user", "content": "x"}])


def test_gemma(server: RunningServer, client: openai.OpenAI, gemma: Path) -> None:
    add(server, gemma, name="gemma3")
    server.http.put(
        "/api/models/gemma3/settings", json={"options": {"n_ctx": 2048, "threads": 2}}
    ).raise_for_status()
    load(server, "gemma3")
    prompt = "The capital of France is Paris. The capital of Germany is"
    text = client.completions.create(model="gemma3", prompt=prompt, max_tokens=8, temperature=0)
    assert "Berlin" in (text.choices[0].text or "")
    streamed = "".join(
        c.choices[0].text or ""
        for c in client.completions.create(
            model="gemma3", prompt="One, two, three,", max_tokens=8, stream=True, temperature=0
        )
    )
    assert "four" in streamed.lower()
    # a base model without a chat template: a clear error naming the fixes, never garbage
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="gemma3", messages=[{"role": "user", "content": "hi"}])
    message = str(e.value)
    assert "has no chat template" in message
    assert "chat_template" in message
    assert "/v1/completions" in message


def test_unknown_and_unloaded_models(
    server: RunningServer, client: openai.OpenAI, tiny_models: dict[str, Path]
) -> None:
    with pytest.raises(openai.NotFoundError, match="no model named 'nope'"):
        client.completions.create(model="nope", prompt="x")
    add(server, tiny_models["tiny-chat"])
    with pytest.raises(openai.ConflictError, match="is not loaded"):
        client.completions.create(model="tiny-chat", prompt="x")
    r = server.http.post("/v1/chat/completions", json={"model": "tiny-chat"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "messages" in r.json()["error"]["message"]


def test_gemma_at_its_own_context(server: RunningServer, client: openai.OpenAI, gemma: Path) -> None:
    """Its trained context is 32768 tokens. llama-cpp-python's server (scripts/test runs this file
    on it too) would keep a 32768 x 262144 logits array, 32 GiB, unless told not to: modelyard
    tells it, and its estimate says what loading really takes."""
    add(server, gemma, name="gemma3")
    server.http.put("/api/models/gemma3/settings", json={"options": {"threads": 2}}).raise_for_status()
    estimate = server.http.get("/api/models/gemma3/estimate").json()
    assert estimate["n_ctx"] == 32768
    assert estimate["ram"]["total"] < 2 << 30
    load(server, "gemma3")
    text = client.completions.create(model="gemma3", prompt="One, two, three,", max_tokens=4, temperature=0)
    assert "four" in (text.choices[0].text or "").lower()
    used = server.http.get("/api/instances").json()[0]["memory"]
    assert used < estimate["ram"]["total"] * 1.2  # the estimate was not far below what it took
