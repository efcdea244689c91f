"""The Files and Batches APIs with the official `openai` client, on a fake engine registered as a
server that already runs: a batch of chat requests end to end (its answers in the output file,
a refused one in the error file, each custom_id once), of Responses requests, a batch whose
input is refused line by line, cancelling, uploads past the limit, and files and batches that
belong to the key that made them. Priority over interactive requests: tests/runtime/test_fifo.py;
a stop and a restart midway: tests/test_batches.py; llama-server: tests/gateway/test_messages.py."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from conftest import RunningServer, serve
from fake_engine import FakeEngine

pytestmark = pytest.mark.unit


def jsonl(requests: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in requests)


def chat(cid: str, model: str = "fake", text: str = "hello") -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}


def finished(client: openai.OpenAI, bid: str) -> Any:
    deadline = time.monotonic() + 30
    while (batch := client.batches.retrieve(bid)).status not in (
        "completed",
        "failed",
        "cancelled",
        "expired",
    ):
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)
    return batch


def records(client: openai.OpenAI, fid: str | None) -> list[dict[str, Any]]:
    assert fid is not None
    return [json.loads(line) for line in client.files.content(fid).text.splitlines()]


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[RunningServer, FakeEngine, openai.OpenAI]]:
    engine = FakeEngine()
    url = engine.start()
    try:
        with serve(tmp_path / "home", one_per_category=False, exclusive=[], max_file=4096) as server:
            body = {"url": url, "remote_model": "fake", "name": "fake", "category": "chat"}
            assert server.http.post("/api/models", json=body).status_code == 201
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
            yield server, engine, client
            client.close()
    finally:
        engine.stop()


def test_a_batch_of_chat_requests_end_to_end(fake: tuple[RunningServer, FakeEngine, openai.OpenAI]) -> None:
    server, engine, client = fake
    requests = [chat(f"q{i}", text=f"question {i}") for i in range(6)] + [chat("lost", model="nope")]
    uploaded = client.files.create(file=("questions.jsonl", jsonl(requests)), purpose="batch")
    assert (uploaded.purpose, uploaded.filename, uploaded.bytes) == (
        "batch",
        "questions.jsonl",
        len(jsonl(requests)),
    )
    assert client.files.content(uploaded.id).content == jsonl(requests)

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "1"},
    )
    assert (batch.status, batch.metadata) == ("validating", {"run": "1"})
    batch = finished(client, batch.id)
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (
        7,
        6,
        1,
    )
    assert batch.usage is not None
    assert (batch.usage.input_tokens, batch.usage.output_tokens) == (5 * 6, 2 * 6)
    assert batch.completed_at is not None
    assert batch.in_progress_at is not None

    out = records(client, batch.output_file_id)
    assert sorted(r["custom_id"] for r in out) == [f"q{i}" for i in range(6)]
    assert {r["response"]["body"]["choices"][0]["message"]["content"] for r in out} == {"hi there"}
    assert all(r["response"]["status_code"] == 200 and r["error"] is None for r in out)
    asked = sorted(p["messages"][0]["content"] for p in engine.posts)
    assert asked == [f"question {i}" for i in range(6)]  # each sent once
    (error,) = records(client, batch.error_file_id)
    assert error["custom_id"] == "lost"
    assert error["response"]["status_code"] == 404
    assert "no model named 'nope'" in error["response"]["body"]["error"]["message"]

    output = client.files.retrieve(batch.output_file_id or "")
    assert output.purpose == "batch_output"
    assert [b.id for b in client.batches.list()] == [batch.id]
    assert {f.id for f in client.files.list()} == {uploaded.id, batch.output_file_id, batch.error_file_id}
    assert [f.id for f in client.files.list(purpose="batch")] == [uploaded.id]
    usage = server.http.get("/api/usage", params={"by": "model"}).json()
    assert any(
        row["name"] == "fake" and row["requests"] >= 6 for row in usage["totals"]
    )  # counted as any request
    client.files.delete(uploaded.id)
    with pytest.raises(openai.NotFoundError, match="no file"):
        client.files.retrieve(uploaded.id)


def test_a_batch_of_responses(fake: tuple[RunningServer, FakeEngine, openai.OpenAI]) -> None:
    _, _, client = fake
    requests = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/responses",
                 "body": {"model": "fake", "input": f"hello {i}", "store": False}} for i in range(3)]  # fmt: skip
    uploaded = client.files.create(file=("r.jsonl", jsonl(requests)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h"
    )
    batch = finished(client, batch.id)
    out = records(client, batch.output_file_id)
    assert sorted(r["custom_id"] for r in out) == ["r0", "r1", "r2"]
    assert {r["response"]["body"]["object"] for r in out} == {"response"}
    assert {r["response"]["body"]["output"][0]["content"][0]["text"] for r in out} == {"hi there"}


def test_a_faulty_input_fails_the_batch_line_by_line(
    fake: tuple[RunningServer, FakeEngine, openai.OpenAI],
) -> None:
    server, engine, client = fake
    lines = jsonl([chat("a"), chat("a"), {**chat("b"), "url": "/v1/embeddings"}]) + b"not json\n"
    uploaded = client.files.create(file=("bad.jsonl", lines), purpose="batch")
    batch = finished(client, client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h").id)  # fmt: skip
    assert batch.status == "failed"
    assert batch.errors is not None
    faults = [(e.line, e.param) for e in batch.errors.data or []]
    assert faults == [(2, "custom_id"), (3, "url"), (4, None)]
    assert engine.posts == []  # nothing ran

    with pytest.raises(openai.BadRequestError, match="batches run"):
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/images/generations", completion_window="24h"
        )  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError, match="no file 'file-nope'"):
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError, match="upload with purpose batch"):
        client.files.create(file=("x.jsonl", b"{}\n"), purpose="fine-tune")
    before = sorted(p.name for p in (server.app.state.settings.files_dir).iterdir())
    with pytest.raises(openai.APIStatusError, match="MODELYARD_MAX_FILE") as refused:
        client.files.create(file=("big.jsonl", io.BytesIO(b"x" * 5000)), purpose="batch")
    assert refused.value.status_code == 413
    assert (
        sorted(p.name for p in (server.app.state.settings.files_dir).iterdir()) == before
    )  # nothing half-kept


def test_cancelling_a_batch_keeps_what_it_answered(
    fake: tuple[RunningServer, FakeEngine, openai.OpenAI],
) -> None:
    _, engine, client = fake
    engine.plan = ["ok", "hang"]  # the first to reach it is answered, the second never is
    lines = [chat("one", text="first"), chat("two", text="second")]
    uploaded = client.files.create(file=("q.jsonl", jsonl(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 10
    while len(engine.posts) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(openai.ConflictError, match="reads"):
        client.files.delete(uploaded.id)  # a running batch reads it
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at is not None
    assert cancelled.request_counts is not None
    assert (cancelled.request_counts.completed, cancelled.request_counts.failed) == (1, 0)
    (answered,) = records(client, cancelled.output_file_id)
    first = engine.posts[0]["messages"][0]["content"]  # the batch sends its requests side by side
    assert answered["custom_id"] == {"first": "one", "second": "two"}[first]
    with pytest.raises(openai.BadRequestError, match="only a batch that runs can be cancelled"):
        client.batches.cancel(batch.id)


def test_files_and_batches_belong_to_their_key(tmp_path: Path) -> None:
    from modelyard.access.keys import Keys
    from modelyard.catalog.store import Store

    home = tmp_path / "home"
    home.mkdir()
    store = Store(f"sqlite:///{home / 'catalog.db'}")
    keys = Keys(store)
    secrets = {
        name: keys.create(name, "admin" if name == "admin" else "inference", [])[1]
        for name in ("admin", "ann", "bob")
    }
    store.close()
    engine = FakeEngine()
    url = engine.start()
    try:
        with serve(home, one_per_category=False, exclusive=[]) as server:
            headers = {"Authorization": f"Bearer {secrets['admin']}"}
            body = {"url": url, "remote_model": "fake", "name": "fake", "category": "chat"}
            assert server.http.post("/api/models", json=body, headers=headers).status_code == 201
            ann, bob = (
                openai.OpenAI(base_url=server.url + "/v1", api_key=secrets[n], max_retries=0)
                for n in ("ann", "bob")
            )
            uploaded = ann.files.create(file=("q.jsonl", jsonl([chat("one")])), purpose="batch")
            with pytest.raises(openai.NotFoundError):
                bob.files.retrieve(uploaded.id)
            with pytest.raises(openai.NotFoundError):
                bob.batches.create(
                    input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
                )
            batch = finished(ann, ann.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h").id)  # fmt: skip
            assert batch.status == "completed"
            with pytest.raises(openai.NotFoundError, match="no batch"):
                bob.batches.retrieve(batch.id)
            assert bob.batches.list().data == []
            usage = server.http.get("/api/usage", params={"by": "key"}, headers=headers).json()
            assert any(
                row["name"] == "ann" and row["requests"] == 1 for row in usage["totals"]
            )  # counted for ann
            listed = server.http.get("/api/batches", headers=headers).json()
            assert [(b["id"], b["key"], b["completed"]) for b in listed] == [(batch.id, "ann", 1)]
            ann.close()
            bob.close()
    finally:
        engine.stop()


def test_the_cli_runs_follows_lists_and_reads_a_batch(
    fake: tuple[RunningServer, FakeEngine, openai.OpenAI], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from modelyard.cli.main import app

    server, _, _ = fake
    monkeypatch.setenv("MODELYARD_URL", server.url)
    monkeypatch.setenv("COLUMNS", "200")
    cli = CliRunner()
    given = tmp_path / "questions.jsonl"
    given.write_bytes(jsonl([chat("a"), chat("b"), chat("c", model="nope")]))
    ran = cli.invoke(app, ["batches", "run", str(given)])
    assert ran.exit_code == 0, ran.output
    bid = ran.output.split("batch ")[-1].split()[0]
    assert f"batch {bid} completed: 2 answered, 1 failed" in ran.output
    listed = cli.invoke(app, ["batches", "ls"])
    assert [line.split()[:5] for line in listed.output.splitlines()[1:]] == [
        [bid, "local", "/v1/chat/completions", "completed", "3/3"]
    ]
    out = cli.invoke(app, ["batches", "output", bid])
    assert sorted(json.loads(line)["custom_id"] for line in out.output.splitlines()) == ["a", "b"]
    errors = cli.invoke(app, ["batches", "output", bid, "--errors", "-o", str(tmp_path / "errors.jsonl")])
    assert "1 line written" in errors.output
    assert json.loads((tmp_path / "errors.jsonl").read_text())["custom_id"] == "c"
    again = cli.invoke(app, ["batches", "cancel", bid])
    assert again.exit_code == 1
    assert "only a batch that runs can be cancelled" in again.output


def test_a_batch_request_is_answered_as_the_chat_route_answers_it_whole(
    fake: tuple[RunningServer, FakeEngine, openai.OpenAI],
) -> None:
    """A batch asks for a stream (an interactive request can stop it at once) and writes the
    answer whole: the same message, reasoning and tool calls as a request not streamed."""
    _, engine, client = fake
    message = {"role": "assistant", "content": "let me look", "reasoning_content": "the user wants weather",
               "tool_calls": [{"id": "call_1", "type": "function",
                               "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}  # fmt: skip
    engine.replies += [(message, "tool_calls"), (message, "tool_calls")]
    direct = client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "weather?"}])
    uploaded = client.files.create(file=("q.jsonl", jsonl([chat("w", text="weather?")])), purpose="batch")
    batch = finished(client, client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h").id)  # fmt: skip
    assert engine.posts[-1]["stream"] is True
    (record,) = records(client, batch.output_file_id)
    answer = record["response"]["body"]
    assert answer["object"] == "chat.completion"
    assert answer["choices"] == [c.model_dump(exclude_none=True) | {"logprobs": None} for c in direct.choices]
    assert answer["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def test_an_interactive_request_preempts_a_batch_request_which_goes_again(
    fake: tuple[RunningServer, FakeEngine, openai.OpenAI],
) -> None:
    """On an engine of one slot, a batch's generation gives way to an interactive request
    that waits for the slot: it is stopped, the interactive request served, and it is sent
    again, answered once."""
    server, engine, client = fake
    assert server.http.put("/api/models/fake/settings", json={"options": {"slots": 1}}).status_code == 200
    engine.plan = ["hang"]  # the batch's first try would never end, not even begin
    uploaded = client.files.create(file=("q.jsonl", jsonl([chat("slow", text="batch")])), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 10
    while not engine.posts:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    asked = client.with_options(timeout=20).chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "now"}]
    )  # at once: the batch's request gives its place
    assert asked.choices[0].message.content == "hi there"
    batch = finished(client, batch.id)
    assert [p["messages"][0]["content"] for p in engine.posts] == ["batch", "now", "batch"]
    (record,) = records(client, batch.output_file_id)
    assert record["custom_id"] == "slow"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 0)
