"""Anthropic's Messages API on /v1/messages with the official `anthropic` client, passed through
to llama-server, which serves it itself: streaming and not, errors in Anthropic's shape; and
OpenAI's Responses API on /v1/responses with the official `openai` client, translated onto
llama-server's chat completions; a batch of chat completions through /v1/files and /v1/batches.
The translations and batches run in full on a fake engine (tests/gateway/test_dialects.py,
tests/gateway/test_responses.py, tests/gateway/test_batches.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from conftest import RunningServer, serve

pytestmark = pytest.mark.engine


GREEDY = {"temperature": 0}  # the client has no argument for it any more


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("messages")
    with serve(root / "home") as running:
        body = {"path": str(tiny_models["tiny-chat"]), "name": "gguf-chat"}
        assert running.http.post("/api/models", json=body).status_code == 201
        r = running.http.post("/api/models/gguf-chat/load", json={}, timeout=300)
        assert r.status_code == 200, r.text
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[anthropic.Anthropic]:
    c = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
    try:
        yield c
    finally:
        c.close()


def test_messages_answer_streaming_and_not(client: anthropic.Anthropic) -> None:
    model = "gguf-chat"
    asked = [{"role": "user", "content": "hello world"}]
    answer = client.messages.create(
        model=model, max_tokens=4, messages=asked, system="be brief", extra_body=GREEDY
    )
    assert answer.role == "assistant"
    assert answer.type == "message"
    assert answer.stop_reason == "max_tokens"
    assert answer.usage.output_tokens == 4
    assert answer.usage.input_tokens > 0
    (block,) = answer.content
    assert block.type == "text"
    with client.messages.stream(
        model=model, max_tokens=4, messages=asked, system="be brief", extra_body=GREEDY
    ) as s:
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 4
    assert streamed == "".join(b.text for b in final.content if b.type == "text")


def test_errors_in_anthropics_shape(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="nope", max_tokens=4, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["type"] == "error"  # type: ignore[index]
    assert e.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="gguf-chat", max_tokens=0, messages=[{"role": "user", "content": "x"}])


def test_responses_answer_as_chat_completions_do(server: RunningServer) -> None:
    """Greedy: the same words as the chat route for the same messages, streamed or not."""
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    asked = {"instructions": "be brief", "input": "hello world", "max_output_tokens": 4, "temperature": 0}
    chat = client.chat.completions.create(
        model="gguf-chat", max_tokens=4, temperature=0,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello world"}],
    )  # fmt: skip
    answer = client.responses.create(model="gguf-chat", **asked)  # type: ignore[arg-type]
    assert answer.output_text == chat.choices[0].message.content
    assert (answer.status, answer.incomplete_details.reason) == ("incomplete", "max_output_tokens")  # type: ignore[union-attr]
    assert answer.usage is not None
    assert answer.usage.output_tokens == 4
    with client.responses.stream(model="gguf-chat", **asked) as stream:  # type: ignore[arg-type]
        events = list(stream)  # the client parses each: no event it does not know
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == answer.output_text
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.usage.output_tokens == 4  # type: ignore[union-attr]


def test_a_batch_answers_as_chat_completions_do(server: RunningServer) -> None:
    """Greedy: each request of the batch gets the words the chat route gives it."""
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    asked = {
        f"q{i}": [{"role": "user", "content": text}] for i, text in enumerate(("hello", "one two", "why"))
    }
    lines = [
        {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gguf-chat", "messages": messages, "max_tokens": 4, "temperature": 0}}
        for cid, messages in asked.items()
    ]  # fmt: skip
    uploaded = client.files.create(
        file=("q.jsonl", "".join(json.dumps(line) + "\n" for line in lines).encode()), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 120
    while (batch := client.batches.retrieve(batch.id)).status != "completed":
        assert batch.status in ("validating", "in_progress", "finalizing"), batch
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert batch.error_file_id is None
    assert batch.output_file_id is not None
    out = {
        r["custom_id"]: r
        for r in map(json.loads, client.files.content(batch.output_file_id).text.splitlines())
    }
    assert sorted(out) == sorted(asked)
    for cid, messages in asked.items():
        chat = client.chat.completions.create(
            model="gguf-chat", messages=messages, max_tokens=4, temperature=0
        )  # type: ignore[arg-type]
        assert (
            out[cid]["response"]["body"]["choices"][0]["message"]["content"]
            == chat.choices[0].message.content
        )


def test_a_completion_with_a_suffix_fills_in_the_middle(server: RunningServer, tmp_path: Path) -> None:
    """A suffix goes to llama-server's /infill, which wraps the prompt and the suffix in the
    model's FIM tokens; the answer, whole or streamed, is OpenAI's text completion."""
    import builders

    (fim,) = builders.write_llama_gguf(tmp_path / "tiny-fim.gguf", fim=True)
    assert server.http.post("/api/models", json={"path": str(fim), "name": "tiny-fim"}).status_code == 201
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    asked: Any = {"prompt": "hello the", "suffix": " world model", "max_tokens": 4, "temperature": 0}
    with pytest.raises(openai.BadRequestError, match="has no fill-in-the-middle tokens"):
        client.completions.create(model="gguf-chat", **asked)
    r = server.http.post("/api/models/tiny-fim/load", json={}, timeout=300)
    assert r.status_code == 200, r.text
    filled = client.completions.create(model="tiny-fim", **asked)
    assert filled.object == "text_completion"
    assert filled.choices[0].finish_reason == "length"
    assert filled.usage is not None
    assert filled.usage.completion_tokens == 4
    alone = client.completions.create(model="tiny-fim", prompt="hello the", max_tokens=1)
    assert alone.usage is not None
    assert filled.usage.prompt_tokens > alone.usage.prompt_tokens  # the suffix and the FIM tokens too
    chunks = list(
        client.completions.create(
            model="tiny-fim", stream=True, stream_options={"include_usage": True}, **asked
        )
    )
    # (the random model writes bytes that are no UTF-8: the engine streams them otherwise)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4


def test_a_chat_longer_than_the_context_is_cut_when_its_setting_says_so(server: RunningServer) -> None:
    """Refused by default; with the model's truncation on (no reload), or a Responses request's
    truncation auto, the oldest turns go and the system prompt stays: the engine's prompt is
    exactly the system prompt and the latest turns that fit (counted by its own tokenizer)."""
    r = server.http.post("/api/models/gguf-chat/load", json={}, timeout=300)  # the one chat model loaded
    assert r.status_code == 200, r.text
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
        cut_to_fit(server, client)


def cut_to_fit(server: RunningServer, client: openai.OpenAI) -> None:
    system = "you answer in one short sentence, and you never use the letter z in it"
    turns: list[dict[str, Any]] = []
    for i in range(8):
        turns += [
            {"role": "user", "content": f"question {i}: " + "tell me more about the cat " * 3},
            {"role": "assistant", "content": f"answer {i}: " + "the cat sat on the mat " * 3},
        ]
    question = {"role": "user", "content": "and the dog?"}
    asked = [{"role": "system", "content": system}, *turns, question]

    def counted(messages: list[dict[str, Any]]) -> int:
        return client.responses.input_tokens.count(
            model="gguf-chat",
            instructions=system,
            input=messages,  # type: ignore[arg-type]
        ).input_tokens

    context = 512  # the tiny model's, on one slot
    room = context - 4  # max_tokens 4
    assert counted([*turns, question]) > context
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gguf-chat", messages=asked, max_tokens=4)  # type: ignore[arg-type]
    assert "truncation" in str(refused.value.body)

    # the fewest whole turns (a question and its answer) to drop, as a user would work it out
    dropped = next(k for k in range(0, len(turns) + 1, 2) if counted([*turns[k:], question]) <= room)
    expected = counted([*turns[dropped:], question])

    answer = client.responses.create(
        model="gguf-chat", instructions=system, input=[*turns, question], max_output_tokens=4,  # type: ignore[arg-type]
        truncation="auto", store=False, temperature=0,
    )  # fmt: skip
    assert answer.truncation == "auto"
    assert answer.usage is not None
    assert answer.usage.input_tokens == expected

    r = server.http.put("/api/models/gguf-chat/settings", json={"options": {"truncation": "auto"}})
    assert r.status_code == 200, r.text
    try:
        chat = client.chat.completions.create(model="gguf-chat", messages=asked, max_tokens=4, temperature=0)  # type: ignore[arg-type]
        assert chat.usage is not None
        assert chat.usage.prompt_tokens == expected
        with pytest.raises(openai.BadRequestError):  # a request may still ask to be refused
            client.responses.create(
                model="gguf-chat", instructions=system, input=[*turns, question], max_output_tokens=4,  # type: ignore[arg-type]
                truncation="disabled", store=False,
            )  # fmt: skip
        alone = [{"role": "system", "content": system}, {"role": "user", "content": "why? " * 600}]
        with pytest.raises(openai.APIStatusError) as too_long:  # nothing left to drop
            client.chat.completions.create(model="gguf-chat", messages=alone, max_tokens=4)  # type: ignore[arg-type]
        assert "with only the system prompt and the latest turn" in too_long.value.message
        assert server.http.get("/api/models/gguf-chat").json()["loaded"]  # no reload was needed
    finally:
        server.http.put("/api/models/gguf-chat/settings", json={"options": {"truncation": None}})
