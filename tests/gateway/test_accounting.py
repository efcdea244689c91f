"""What the gateway counts: Prometheus metrics after real requests (parsed with
prometheus-client's own parser), usage in the catalog equal to the engines' own usage fields,
a load refused over quota, and the one retry of a request whose engine dropped it before
answering (never after the first byte)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from conftest import RunningServer, serve
from fake_engine import USAGE, FakeEngine
from modelyard.cli.main import app
from runtime.conftest import add, load

pytestmark = pytest.mark.engine


def cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    with serve(tmp_path / "home") as running:
        monkeypatch.setenv("MODELYARD_URL", running.url)
        monkeypatch.setenv("COLUMNS", "200")
        yield running


def scrape(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, labels) -> value."""
    r = server.http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_and_usage_after_real_requests(server: RunningServer, tiny_models: dict[str, Path]) -> None:
    add(server, tiny_models["tiny-chat"])
    add(server, tiny_models["tiny-embed"])
    load(server, "tiny-chat")
    load(server, "tiny-embed")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 6,
            "temperature": 0}  # fmt: skip
    plain = client.chat.completions.create(**body)  # type: ignore[call-overload]
    assert plain.usage is not None
    # a stream that did not ask for usage gets none (the gateway asks, counts it, keeps it)
    with server.http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["choices"] and "usage" not in c for c in chunks)
    # one that asked gets it
    asked = list(client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True}))  # type: ignore[call-overload]
    usage = asked[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        plain.usage.prompt_tokens,
        plain.usage.completion_tokens,
    )
    text = client.completions.create(model="tiny-chat", prompt="hello world", max_tokens=4, temperature=0)
    assert text.usage is not None
    vectors = client.embeddings.create(model="tiny-embed", input=["one two", "three"])
    r = server.http.post(
        "/v1/chat/completions", json={"model": "tiny-embed", "messages": [{"role": "user", "content": "x"}]}
    )
    assert r.status_code == 400

    chat_in = 3 * plain.usage.prompt_tokens
    chat_out = 3 * plain.usage.completion_tokens
    samples = scrape(server)
    assert value(samples, "modelyard_requests_total", model="tiny-chat", endpoint="chat", status="200") == 3
    assert (
        value(samples, "modelyard_requests_total", model="tiny-chat", endpoint="completions", status="200")
        == 1
    )
    assert (
        value(samples, "modelyard_requests_total", model="tiny-embed", endpoint="embeddings", status="200")
        == 1
    )
    assert value(samples, "modelyard_requests_total", model="tiny-embed", endpoint="chat", status="400") == 1
    assert (
        value(samples, "modelyard_tokens_total", model="tiny-chat", endpoint="chat", direction="in")
        == chat_in
    )
    assert (
        value(samples, "modelyard_tokens_total", model="tiny-chat", endpoint="chat", direction="out")
        == chat_out
    )
    assert value(samples, "modelyard_tokens_total", model="tiny-chat", endpoint="completions",
                 direction="out") == text.usage.completion_tokens  # fmt: skip
    assert value(samples, "modelyard_tokens_total", model="tiny-embed", endpoint="embeddings",
                 direction="in") == vectors.usage.prompt_tokens  # fmt: skip
    assert (
        value(samples, "modelyard_time_to_first_token_seconds_count", model="tiny-chat", endpoint="chat") == 2
    )
    assert value(samples, "modelyard_request_seconds_count", model="tiny-chat", endpoint="chat") == 3
    assert value(samples, "modelyard_queue_wait_seconds_count", model="tiny-chat", endpoint="chat") == 3
    assert value(samples, "modelyard_instances", model="tiny-chat", state="running") == 1
    assert value(samples, "modelyard_queue_waiting", model="tiny-chat") == 0
    assert value(samples, "modelyard_memory_total_bytes") > 0
    assert ("modelyard_restarts_total", ()) not in samples  # per model, none yet

    by_model = {t["name"]: t for t in server.http.get("/api/usage", params={"since": "1h"}).json()["totals"]}
    chat = by_model["tiny-chat"]
    assert (chat["requests"], chat["tokens_in"], chat["tokens_out"]) == (
        4,
        chat_in + text.usage.prompt_tokens,
        chat_out + text.usage.completion_tokens,
    )
    assert by_model["tiny-embed"]["tokens_in"] == vectors.usage.prompt_tokens
    answer = server.http.get("/api/usage", params={"by": "key"}).json()
    assert [t["name"] for t in answer["totals"]] == ["local"]
    assert sum(h["requests"] for h in answer["hours"]) == 6
    out = cli("usage", "--since", "24h")
    assert "tiny-chat" in out
    assert "tiny-embed" in out
    assert json.loads(cli("usage", "--by", "key", "--json"))["totals"][0]["requests"] == 6


def test_a_load_over_quota_is_refused(server: RunningServer, tiny_models: dict[str, Path]) -> None:
    add(server, tiny_models["tiny-chat"])
    add(server, tiny_models["tiny-embed"])
    assert "no quota" in cli("quotas", "ls")
    assert "1 loads per day" in cli("quotas", "set", "--loads", "1")
    for _ in range(2):  # chat models load freely
        load(server, "tiny-chat")
        assert server.http.post("/api/models/tiny-chat/unload", json={}).status_code == 204
    load(server, "tiny-embed")  # the one load the quota allows
    load(server, "tiny-embed")  # already loaded: not a new load
    assert server.http.post("/api/models/tiny-embed/unload", json={}).status_code == 204
    r = server.http.post("/api/models/tiny-embed/load", json={})
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert "used 1 of 1 loads" in error["message"]
    assert "0 left" in error["message"]
    assert not server.runtime.is_loaded("tiny-embed")
    out = cli("quotas", "ls")
    assert "local (*)" in out
    assert "1 per day" in out
    standing = server.http.get("/api/quotas").json()["standings"][0]
    assert (standing["used"], standing["left"]) == (1, 0)
    assert server.http.get("/api/usage").json()["totals"][0]["loads"] == 1
    cli("quotas", "set", "--loads", "2")
    load(server, "tiny-embed")  # raised: it loads again
    cli("quotas", "rm")
    assert "no quota" in cli("quotas", "ls")
    r = server.http.put("/api/quotas/*", json={"loads": 1, "period": "year"})
    assert r.status_code == 400
    r = server.http.put("/api/quotas/nobody", json={"loads": 1})
    assert r.status_code == 404


def test_one_retry_before_the_first_byte_never_after(server: RunningServer) -> None:
    engine = FakeEngine()
    url = engine.start()
    try:
        cli("import", "--url", url)
        load(server, "fake")
        chat = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
        engine.plan = ["drop"]  # dropped before a byte: sent again, answered
        r = server.http.post("/v1/chat/completions", json=chat)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "hi there"
        assert len(engine.posts) == 2
        assert value(scrape(server), "modelyard_retries_total", model="fake", endpoint="chat") == 1

        engine.plan = ["drop", "drop"]  # sent again once only
        r = server.http.post("/v1/chat/completions", json=chat)
        assert r.status_code == 502, r.text
        assert "no instance of 'fake' answered" in r.json()["error"]["message"]
        assert len(engine.posts) == 4

        engine.plan = ["cut"]  # cut after the first byte: never sent again
        with server.http.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}) as s:
            text = "".join(s.iter_text())
        assert '"hi"' in text
        assert "the engine stopped while answering" in text
        assert len(engine.posts) == 5
        samples = scrape(server)
        assert value(samples, "modelyard_retries_total", model="fake", endpoint="chat") == 2
        assert value(samples, "modelyard_requests_total", model="fake", endpoint="chat", status="502") == 2
        # the usage the engine reported for the answered request, counted
        assert (
            value(samples, "modelyard_tokens_total", model="fake", endpoint="chat", direction="in")
            == USAGE["prompt_tokens"]
        )
        assert httpx.get(url + "/v1/models").status_code == 200
    finally:
        engine.stop()
