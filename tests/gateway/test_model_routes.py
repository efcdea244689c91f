"""Model routes through the real gateway: a route of servers that already run (fake engines on
cue, registered with their URLs) is listed in /v1/models, answers the official clients, falls
back to the next target on a server error, a 429 or a dead server before the first byte (never
after it, never on the client's own error), and counts what each target did in /metrics and
/api/routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from conftest import RunningServer, serve
from fake_engine import FakeEngine

HELLO = [{"role": "user", "content": "hi"}]
ERROR = b'{"error": {"message": "the engine is busy", "type": "server_error"}}'


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[RunningServer, FakeEngine, FakeEngine]]:
    """A server with two fake engines registered as "near" and "far", and the route "team":
    every request to near first (far has weight 0: a fallback only)."""
    near, far = FakeEngine(), FakeEngine()
    try:
        urls = near.start(), far.start()
        with serve(tmp_path / "home") as server:
            for name, url in zip(("near", "far"), urls, strict=True):
                r = server.http.post("/api/models", json={"url": url, "name": name})
                assert r.status_code == 201, r.text
            targets = [{"model": "near", "weight": 1}, {"model": "far", "weight": 0}]
            r = server.http.post("/api/routes", json={"name": "team", "targets": targets})
            assert r.status_code == 201, r.text
            yield server, near, far
    finally:
        near.stop()
        far.stop()


def counted(server: RunningServer) -> dict[tuple[str, str], int]:
    """(target, outcome) -> requests, as /api/routes says for the route "team"."""
    route = server.http.get("/api/routes/team").json()
    return {(t["model"], o): n for t in route["targets"] for o, n in t["requests"].items()}


def test_a_route_is_a_model_to_clients_and_falls_back_before_the_first_byte(
    engines: tuple[RunningServer, FakeEngine, FakeEngine],
) -> None:
    server, near, far = engines
    listed = {m.id: m for m in openai.OpenAI(base_url=server.url + "/v1", api_key="x").models.list()}
    assert listed["team"].model_extra == {"category": "chat", "loaded": False, "targets": ["near", "far"]}
    assert "targets" not in (listed["near"].model_extra or {})

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    answer = client.chat.completions.create(model="team", messages=HELLO)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "hi there"
    assert [p["model"] for p in near.posts] == ["fake"]
    assert far.posts == []

    # a server error and a 429 before the first byte: the next target answers
    near.errors = [(503, ERROR), (429, ERROR)]
    for _ in range(2):
        answer = client.chat.completions.create(model="team", messages=HELLO)  # type: ignore[arg-type]
        assert answer.choices[0].message.content == "hi there"
    assert [p["model"] for p in far.posts] == ["fake", "fake"]  # the name the far server knows
    # streamed too, and through Anthropic's Messages (translated: neither speaks them itself)
    near.errors = [(500, ERROR), (502, ERROR)]
    stream = client.chat.completions.create(model="team", messages=HELLO, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "hi there"
    message = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0).messages.create(
        model="team", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    assert [(c.type, getattr(c, "text", None)) for c in message.content] == [("text", "hi there")]
    assert len(far.posts) == 4

    # the client's own error is its answer: the next target would refuse it too
    near.errors = [(400, b'{"error": {"message": "bad temperature", "type": "invalid_request_error"}}')]
    with pytest.raises(openai.BadRequestError, match="bad temperature"):
        client.chat.completions.create(model="team", messages=HELLO)  # type: ignore[arg-type]
    # a stream that broke after its first chunk is not sent again
    near.plan = ["cut"]
    with pytest.raises(openai.APIError, match="stopped while answering"):
        for _ in client.chat.completions.create(model="team", messages=HELLO, stream=True):  # type: ignore[arg-type]
            pass
    assert len(far.posts) == 4

    # the last target's error is the client's, as it came
    near.errors, far.errors = [(503, ERROR)], [(503, ERROR)]
    with pytest.raises(openai.InternalServerError, match="the engine is busy"):
        client.chat.completions.create(model="team", messages=HELLO)  # type: ignore[arg-type]

    assert counted(server) == {
        ("near", "served"): 3, ("near", "failed"): 4, ("near", "overloaded"): 1,
        ("far", "served"): 4, ("far", "failed"): 1,
    }  # fmt: skip
    metrics = server.http.get("/metrics").text
    assert 'modelyard_route_requests_total{outcome="overloaded",route="team",target="near"} 1.0' in metrics
    assert 'modelyard_route_requests_total{outcome="served",route="team",target="far"} 4.0' in metrics
    # a request a target served is counted for that target's model
    assert 'modelyard_requests_total{endpoint="chat",model="far",status="200"} 4.0' in metrics


def test_a_dead_target_is_passed_over(tmp_path: Path) -> None:
    near, far = FakeEngine(), FakeEngine()
    near_url, far_url = near.start(), far.start()
    try:
        with serve(tmp_path / "home") as server:
            for name, url in (("near", near_url), ("far", far_url)):
                assert server.http.post("/api/models", json={"url": url, "name": name}).status_code == 201
            targets = [{"model": "near", "weight": 1}, {"model": "far", "weight": 0}]
            assert (
                server.http.post("/api/routes", json={"name": "team", "targets": targets}).status_code == 201
            )
            near.stop()  # it went away: nothing answers at its address
            body = {"model": "team", "messages": HELLO}
            for _ in range(2):
                r = server.http.post("/v1/chat/completions", json=body)
                assert r.status_code == 200, r.text
            assert len(far.posts) == 2
            # the second went to far first: near cools down after it could not be loaded
            assert counted(server) == {("near", "unavailable"): 1, ("far", "served"): 2}
    finally:
        far.stop()


def test_routes_are_checked_and_follow_their_models(
    engines: tuple[RunningServer, FakeEngine, FakeEngine],
) -> None:
    server, _, _ = engines
    http = server.http

    def refused(r: httpx.Response, status: int, words: str) -> None:
        assert r.status_code == status, r.text
        assert words in r.json()["error"]["message"]

    refused(http.post("/api/routes", json={"name": "x", "targets": [{"model": "nowhere"}]}), 400,
            "no model named 'nowhere'")  # fmt: skip
    refused(http.post("/api/routes", json={"name": "near", "targets": [{"model": "far"}]}), 409,
            "names a model")  # fmt: skip
    refused(http.post("/api/routes", json={"name": "team", "targets": [{"model": "far"}]}), 409,
            "a route named 'team' exists")  # fmt: skip
    refused(http.post("/api/routes", json={"name": "x", "targets": [{"model": "far", "weight": 0}]}), 400,
            "no target of weight above 0")  # fmt: skip
    refused(http.post("/api/routes", json={"name": "x", "targets": [{"model": "far"}, {"model": "far"}]}),
            400, "names 'far' twice")  # fmt: skip
    refused(http.post("/api/routes", json={"name": "x", "targets": [{"model": "team"}]}), 400, "is a route")
    refused(http.post("/api/routes", json={"name": "x", "targets": []}), 400, "needs a target")
    # a model may not take a route's name, nor be deleted while a route sends to it
    refused(http.patch("/api/models/far", json={"name": "team"}), 409, "names a route")
    refused(http.patch("/api/models/far", json={"aliases": ["team"]}), 409, "names a route")
    refused(http.delete("/api/models/far"), 409, "a target of the route team")

    # renamed, it stays a target
    assert http.patch("/api/models/far", json={"name": "farther"}).status_code == 200
    assert [t["model"] for t in http.get("/api/routes/team").json()["targets"]] == ["near", "farther"]

    edited = http.put("/api/routes/team", json={"targets": [{"model": "farther", "weight": 2}]})
    assert edited.status_code == 200, edited.text
    assert http.post("/v1/chat/completions", json={"model": "team", "messages": HELLO}).status_code == 200
    assert counted(server) == {("farther", "served"): 1}
    assert http.delete("/api/routes/team").status_code == 204
    refused(http.get("/api/routes/team"), 404, "no route named 'team'")
    refused(http.post("/v1/chat/completions", json={"model": "team", "messages": HELLO}), 404,
            "no model named 'team'")  # fmt: skip
