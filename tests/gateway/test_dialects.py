"""The dialects the gateway translates, on an engine that speaks only OpenAI's API (a fake HTTP
engine registered as a server that already runs): Anthropic's Messages with the official
`anthropic` client, the Ollama API with the official `ollama` client (chat, generate, embed,
loads on demand, keep_alive), each streaming and not, with the body the engine got and the
errors in each dialect's shape. The real engines keep one end-to-end test each
(tests/gateway/test_messages.py, tests/ollama/test_ollama_api.py)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

import ollama
from conftest import RunningServer, free_port, serve
from fake_engine import USAGE, FakeEngine, vector_of
from waiting import eventually


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[RunningServer, FakeEngine]]:
    engine = FakeEngine(served=("fake", "fake-embed"))
    url = engine.start()
    try:
        with serve(
            tmp_path / "home", ollama_port=free_port(), one_per_category=False, exclusive=[]
        ) as server:
            for name, category in (("fake", "chat"), ("fake-embed", "embedding")):
                body = {"url": url, "remote_model": name, "name": name, "category": category}
                r = server.http.post("/api/models", json=body)
                assert r.status_code == 201, r.text
            yield server, engine
    finally:
        engine.stop()


@pytest.fixture
def claude(fake: tuple[RunningServer, FakeEngine]) -> Iterator[anthropic.Anthropic]:
    c = anthropic.Anthropic(base_url=fake[0].url, api_key="unused", max_retries=0)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def llama(fake: tuple[RunningServer, FakeEngine]) -> Iterator[ollama.Client]:
    c = ollama.Client(host=f"http://127.0.0.1:{fake[0].app.state.settings.ollama_port}")
    try:
        yield c
    finally:
        c.close()


def test_anthropic_messages_become_chat_completions(
    fake: tuple[RunningServer, FakeEngine], claude: anthropic.Anthropic
) -> None:
    _, engine = fake
    asked = [{"role": "user", "content": "hello world"}]
    answer = claude.messages.create(model="fake", max_tokens=4, messages=asked, system="be brief")
    (block,) = answer.content
    assert (answer.role, block.type, block.text) == ("assistant", "text", "hi there")
    assert answer.stop_reason == "end_turn"
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (5, 2)
    sent = engine.posts[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello world"},
    ]
    assert sent["max_tokens"] == 4
    with claude.messages.stream(model="fake", max_tokens=4, messages=asked) as s:
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    assert streamed == "hi there"
    assert final.usage.output_tokens == USAGE["completion_tokens"]
    assert engine.posts[-1]["stream"] is True
    with pytest.raises(anthropic.NotFoundError) as e:
        claude.messages.create(model="nope", max_tokens=4, messages=asked)
    assert e.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(model="fake-embed", max_tokens=4, messages=asked)
    assert refused.value.body["type"] == "error"  # type: ignore[index]


def test_ollama_chat_and_generate_load_on_demand_and_stream(
    fake: tuple[RunningServer, FakeEngine], llama: ollama.Client
) -> None:
    _, engine = fake
    assert llama.ps().models == []
    options = {"num_predict": 3, "temperature": 0}
    chat = llama.chat(model="fake", messages=[{"role": "user", "content": "hi"}], options=options)
    assert (chat.done, chat.message.role, chat.message.content) == (True, "assistant", "hi there")
    assert (chat.prompt_eval_count, chat.eval_count) == (5, 2)
    sent = engine.posts[-1]
    assert (sent["max_tokens"], sent["temperature"], sent["messages"]) == (
        3,
        0,
        [{"role": "user", "content": "hi"}],
    )
    (running,) = llama.ps().models  # loaded on demand, as Ollama does
    assert running.model == "fake:latest"
    pieces = list(llama.chat(model="fake", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "".join(p.message.content or "" for p in pieces) == "hi there"
    assert pieces[-1].done
    assert not any(p.done for p in pieces[:-1])
    generated = llama.generate(model="fake", prompt="one two", options=options, raw=True)
    assert (generated.response, generated.done_reason, generated.eval_count) == ("hi there", "length", 2)
    assert engine.posts[-1]["prompt"] == "one two"  # raw: a plain completion
    streamed = list(llama.generate(model="fake", prompt="one two", raw=True, stream=True))
    assert "".join(p.response for p in streamed) == "hi there"
    assert streamed[-1].done_reason == "length"
    # nothing to answer and keep_alive 0: Ollama's way to unload
    assert llama.generate(model="fake", keep_alive=0).done_reason == "unload"
    eventually(lambda: llama.ps().models == [], what="the model unloaded")


def test_ollama_embed_and_errors(fake: tuple[RunningServer, FakeEngine], llama: ollama.Client) -> None:
    _, engine = fake
    texts = ["the quick brown fox", "a cat"]
    out = llama.embed(model="fake-embed", input=texts)
    assert engine.posts[-1]["input"] == texts
    for text, vector in zip(texts, out.embeddings, strict=True):
        raw = vector_of(text)
        norm = math.sqrt(sum(x * x for x in raw))
        assert vector == pytest.approx([x / norm for x in raw])  # Ollama's unit length
    assert out.prompt_eval_count == 6
    assert llama.embeddings(model="fake-embed", prompt="a cat").embedding == vector_of("a cat")
    with pytest.raises(ollama.ResponseError) as e:
        llama.chat(model="fake-embed", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 400
    with pytest.raises(ollama.ResponseError) as e:
        llama.chat(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 404
    assert "no-such-model" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        llama.generate(model="fake", prompt="x", keep_alive="soon")
    assert "keep_alive" in e.value.error


def test_the_ollama_port_serves_the_openai_api_too(fake: tuple[RunningServer, FakeEngine]) -> None:
    """As Ollama does: an agent that finds "Ollama" on its port uses its /v1 there, the Responses
    API included where /api/version is recent enough (0.13.3 added it)."""
    server, _ = fake
    base = f"http://127.0.0.1:{server.app.state.settings.ollama_port}"
    version = httpx.get(base + "/api/version").json()["version"]
    assert tuple(int(n) for n in version.split(".")) >= (0, 13, 3)
    client = openai.OpenAI(base_url=base + "/v1", api_key="ollama", max_retries=0)
    try:
        assert {m.id for m in client.models.list().data} == {"fake", "fake-embed"}
        chat = client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hi"}])
        assert chat.choices[0].message.content == "hi there"
        assert client.responses.create(model="fake", input="hi").output_text == "hi there"
    finally:
        client.close()
    missing = httpx.get(base + "/v1/no-such-route")
    assert missing.status_code == 404
    assert set(missing.json()["error"]) == {"message", "type", "code", "param", "hint"}  # modelyard's shape
    assert "error" in httpx.get(base + "/api/no-such-route").json()  # Ollama's, beside it
