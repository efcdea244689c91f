"""Errors in the documented shape everywhere: malformed chat bodies are refused by the gateway
before an engine sees them, an engine's own error answers are translated (its message kept),
/v1/messages answers in Anthropic's shape, the Ollama listener in Ollama's; the connection stays
usable after each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import RunningServer, free_port, serve
from fake_engine import FakeEngine

HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[RunningServer, FakeEngine]]:
    engine = FakeEngine()
    url = engine.start()
    try:
        with serve(tmp_path / "home", max_body=64 << 10, ollama_port=free_port()) as server:
            r = server.http.post("/api/models", json={"url": url, "name": "fake"})
            assert r.status_code == 201, r.text
            yield server, engine
    finally:
        engine.stop()


def error_of(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "code", "param", "hint"}, body
    error: dict[str, Any] = body["error"]
    return error


def test_malformed_chat_bodies_never_reach_the_engine(fake: tuple[RunningServer, FakeEngine]) -> None:
    server, engine = fake
    bad: list[tuple[dict[str, Any], str]] = [
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"messages": ["hi"]}, "messages.0"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]}, "messages.0.content"),
        ({"messages": HELLO, "tools": {"type": "function"}}, "tools"),
        (
            {"messages": HELLO, "tools": [{"type": "function", "function": {"name": "a b"}}]},
            "tools.0.function",
        ),
        ({"messages": HELLO, "tools": [{"type": "function"}]}, "tools.0.function"),
        ({"messages": HELLO, "tool_choice": "sometimes"}, "tool_choice"),
        ({"messages": [{"role": "assistant", "tool_calls": [{"id": "1"}]}]}, "messages.0.tool_calls.0"),
    ]
    for body, where in bad:
        error = error_of(server.http.post("/v1/chat/completions", json={"model": "fake", **body}), 400)
        assert where in error["message"], (body, error)
    r = server.http.post("/v1/embeddings", json={"model": "fake", "input": "a", "encoding_format": 5})
    assert "encoding_format" in error_of(r, 400)["message"]
    assert engine.posts == []
    good = {"model": "fake", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    assert server.http.post("/v1/chat/completions", json=good).status_code == 200


def test_an_engines_own_errors_come_back_in_the_documented_shape(
    fake: tuple[RunningServer, FakeEngine],
) -> None:
    server, engine = fake
    chat = {"model": "fake", "messages": HELLO}
    engine.errors = [
        # llama-server's shape, a 500 for what it could not take
        (500, b'{"error":{"code":500,"message":"Failed to parse messages","type":"server_error"}}'),
        # vLLM's older shape, a 400
        (400, b'{"object":"error","message":"max_tokens is too large","type":"BadRequestError","code":400}'),
        # a plain text body
        (503, b"Service Unavailable"),
    ]
    failed = error_of(server.http.post("/v1/chat/completions", json=chat), 502)
    assert failed["code"] == "engine_error"
    assert failed["message"].startswith("the engine answered 500: Failed to parse messages")
    refused = error_of(server.http.post("/v1/chat/completions", json=chat), 400)
    assert refused["message"].startswith("the engine refused the request: max_tokens is too large")
    down = error_of(server.http.post("/v1/chat/completions", json={**chat, "stream": True}), 502)
    assert "Service Unavailable" in down["message"]
    assert server.http.post("/v1/chat/completions", json=chat).status_code == 200  # serves on


def test_anthropic_and_ollama_answer_in_their_own_shapes(fake: tuple[RunningServer, FakeEngine]) -> None:
    server, _engine = fake
    big = {"model": "fake", "max_tokens": 8, "messages": [{"role": "user", "content": "x" * (80 << 10)}]}
    r = server.http.post("/v1/messages", json=big)
    assert r.status_code == 413
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "request_too_large"
    r = server.http.post("/v1/messages", content=b"max_tokens=8", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["error"]["type"] == "invalid_request_error"
    ollama = f"http://127.0.0.1:{server.app.state.settings.ollama_port}"
    with httpx.Client(base_url=ollama) as http:
        for method, path in (("GET", "/no/such/route"), ("GET", "/api/nothing"), ("GET", "/api/chat")):
            answer = http.request(method, path)
            assert answer.status_code in (404, 405), answer.text
            assert set(answer.json()) == {"error"}, answer.text
        assert http.get("/api/version").status_code == 200
