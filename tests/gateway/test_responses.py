"""OpenAI's Responses API with the official `openai` client, on an engine that speaks only chat
completions (a fake HTTP engine registered as a server that already runs): text, a function
tool loop, reasoning, structured output and a cut-short answer, each streamed and not, with the
chat request the engine got and the errors in OpenAI's shape. llama-server answers the same
requests end to end in tests/gateway/test_messages.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from conftest import RunningServer, serve
from fake_engine import USAGE, FakeEngine
from waiting import eventually

pytestmark = pytest.mark.unit

CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "the weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[RunningServer, FakeEngine, openai.OpenAI]]:
    engine = FakeEngine()
    url = engine.start()
    try:
        with serve(tmp_path / "home", one_per_category=False, exclusive=[]) as server:
            body = {"url": url, "remote_model": "fake", "name": "fake", "category": "chat"}
            assert server.http.post("/api/models", json=body).status_code == 201
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
            yield server, engine, client
            client.close()
    finally:
        engine.stop()


def streamed(client: openai.OpenAI, **request: Any) -> tuple[list[Any], Any]:
    """The stream's events, parsed by the client (which refuses unknown ones), and its final
    response as the client assembles it."""
    with client.responses.stream(**request) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    return events, final


def test_text_streamed_and_not(fake: tuple[RunningServer, FakeEngine, openai.OpenAI]) -> None:
    _, engine, client = fake
    answer = client.responses.create(
        model="fake", input="hello", instructions="be brief", max_output_tokens=4, metadata={"run": "7"}
    )
    assert answer.output_text == "hi there"
    assert (answer.status, answer.model, answer.metadata) == ("completed", "fake", {"run": "7"})
    assert answer.usage is not None
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (5, 2)
    assert engine.posts[-1]["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert engine.posts[-1]["max_tokens"] == 4

    events, final = streamed(client, model="fake", input=[{"role": "user", "content": "hello"}])
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "hi there"
    assert final.output_text == "hi there"
    assert final.usage is not None
    assert final.usage.total_tokens == USAGE["total_tokens"]
    assert engine.posts[-1]["stream_options"] == {"include_usage": True}


def test_a_function_tool_loop(fake: tuple[RunningServer, FakeEngine, openai.OpenAI]) -> None:
    """The model calls a tool; its output goes back as a function_call_output item; the call never
    shows as text."""
    _, engine, client = fake
    asked: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    engine.replies.append(({"role": "assistant", "content": None, "tool_calls": [CALL]}, "tool_calls"))
    first = client.responses.create(model="fake", input=asked, tools=[WEATHER], tool_choice="auto")  # type: ignore[list-item]
    (call,) = first.output
    assert call.type == "function_call"
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        "call_1",
        "get_weather",
        {"city": "Paris"},
    )
    assert first.output_text == ""
    sent = engine.posts[-1]
    assert sent["tools"] == [
        {"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}
    ]
    assert sent["tool_choice"] == "auto"

    second = client.responses.create(
        model="fake",
        input=[
            *asked,
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": "call_1", "output": "18 C"},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert second.output_text == "hi there"
    assert engine.posts[-1]["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
    ]

    engine.replies.append(({"role": "assistant", "content": None, "tool_calls": [CALL]}, "tool_calls"))
    events, final = streamed(client, model="fake", input=asked, tools=[WEATHER])
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(deltas) == 2
    assert "".join(deltas) == CALL["function"]["arguments"]  # type: ignore[index]
    (done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert json.loads(done.arguments) == {"city": "Paris"}
    assert [item.type for item in final.output] == ["function_call"]
    assert not [e for e in events if e.type == "response.output_text.delta"]


def test_reasoning_items_and_a_cut_short_answer(
    fake: tuple[RunningServer, FakeEngine, openai.OpenAI],
) -> None:
    _, engine, client = fake
    thought = {"role": "assistant", "reasoning_content": "the user greets", "content": "hello back"}
    engine.replies.append((thought, "stop"))
    answer = client.responses.create(model="fake", input="hi", reasoning={"effort": "high"})
    reasoning, message = answer.output
    assert (reasoning.type, message.type) == ("reasoning", "message")
    assert [c.text for c in reasoning.content or []] == ["the user greets"]
    assert answer.output_text == "hello back"
    assert engine.posts[-1]["chat_template_kwargs"] == {"enable_thinking": True, "reasoning_effort": "high"}

    engine.replies.append((thought, "length"))
    with client.responses.stream(model="fake", input="hi", reasoning={"effort": "none"}) as stream:
        events = list(stream)  # it ends with response.incomplete, as OpenAI's does
    assert engine.posts[-1]["chat_template_kwargs"] == {"enable_thinking": False}
    reasoned = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert reasoned == "the user greets"
    assert events[-1].type == "response.incomplete"
    final = events[-1].response
    assert (final.status, final.incomplete_details.reason) == ("incomplete", "max_output_tokens")  # type: ignore[union-attr]
    assert [item.type for item in final.output] == ["reasoning", "message"]


def test_structured_output_goes_to_the_engine(fake: tuple[RunningServer, FakeEngine, openai.OpenAI]) -> None:
    _, engine, client = fake
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
              "additionalProperties": False}  # fmt: skip
    text: Any = {"format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}}
    client.responses.create(model="fake", input="a person", text=text, temperature=0.2, top_p=0.9)
    sent = engine.posts[-1]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": schema, "strict": True},
    }
    assert (sent["temperature"], sent["top_p"]) == (0.2, 0.9)


def test_what_is_not_served_is_refused_clearly(fake: tuple[RunningServer, FakeEngine, openai.OpenAI]) -> None:
    server, engine, client = fake
    with pytest.raises(openai.BadRequestError, match="a tool of type 'web_search' is not supported"):
        client.responses.create(model="fake", input="news?", tools=[{"type": "web_search"}])
    with pytest.raises(openai.BadRequestError, match="a background response is not streamed here"):
        client.responses.create(model="fake", input="later", background=True, stream=True)
    with pytest.raises(openai.BadRequestError, match=r"input\[0\]: an item of type 'file_search_call'"):
        client.responses.create(model="fake", input=[{"type": "file_search_call", "id": "x"}])  # type: ignore[list-item]
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nope", input="hi")
    with pytest.raises(openai.BadRequestError, match="whose engine does not count tokens"):
        client.responses.input_tokens.count(model="fake", input="hi")  # a server that already runs
    posts = len(engine.posts)
    r = server.http.post("/v1/responses", json={"model": "fake", "input": []})
    assert r.status_code == 400
    assert "input holds no item" in r.json()["error"]["message"]
    assert len(engine.posts) == posts  # none reached the engine


def test_an_engine_that_stops_mid_stream_fails_the_response(
    fake: tuple[RunningServer, FakeEngine, openai.OpenAI],
) -> None:
    _, engine, client = fake
    engine.plan = ["cut"]
    with client.responses.stream(model="fake", input="hello") as stream:
        events = list(stream)
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None
    assert "the engine stopped" in events[-1].response.error.message


def test_stored_responses_chain_by_previous_response_id(
    fake: tuple[RunningServer, FakeEngine, openai.OpenAI],
) -> None:
    _, engine, client = fake
    first = client.responses.create(model="fake", input="my name is Ann")
    second = client.responses.create(model="fake", input="what is my name?", previous_response_id=first.id)
    assert engine.posts[-1]["messages"] == [
        {"role": "user", "content": "my name is Ann"},
        {"role": "assistant", "content": "hi there"},
        {"role": "user", "content": "what is my name?"},
    ]
    assert second.previous_response_id == first.id
    assert client.responses.retrieve(first.id).output_text == "hi there"
    (item,) = client.responses.input_items.list(second.id).data
    assert item.type == "message"
    assert [c.text for c in item.content] == ["what is my name?"]  # type: ignore[union-attr]

    _, third = streamed(client, model="fake", input="and again?", previous_response_id=second.id)
    assert len(engine.posts[-1]["messages"]) == 5
    assert client.responses.retrieve(third.id).output_text == "hi there"  # a stream is kept too

    unkept = client.responses.create(model="fake", input="forget this", store=False)
    assert unkept.store is False
    with pytest.raises(openai.NotFoundError, match="no stored response"):
        client.responses.retrieve(unkept.id)
    deleted = client.responses.delete(first.id)
    assert deleted is None  # the client returns nothing for a deletion that went through
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError, match=first.id):  # the chain lost its start
        client.responses.create(model="fake", input="and now?", previous_response_id=third.id)


def test_a_stored_response_belongs_to_its_key(tmp_path: Path) -> None:
    from modelyard.access.keys import Keys
    from modelyard.catalog.store import Store

    home = tmp_path / "home"
    home.mkdir()
    store = Store(f"sqlite:///{home / 'catalog.db'}")
    secrets = {name: Keys(store).create(name, "admin", [])[1] for name in ("ann", "bob")}
    store.close()
    engine = FakeEngine()
    url = engine.start()
    try:
        with serve(home, one_per_category=False, exclusive=[]) as server:
            body = {"url": url, "remote_model": "fake", "name": "fake", "category": "chat"}
            made = server.http.post(
                "/api/models", json=body, headers={"Authorization": f"Bearer {secrets['ann']}"}
            )
            assert made.status_code == 201
            ann, bob = (
                openai.OpenAI(base_url=server.url + "/v1", api_key=secrets[name], max_retries=0)
                for name in ("ann", "bob")
            )
            mine = ann.responses.create(model="fake", input="a secret")
            assert ann.responses.retrieve(mine.id).id == mine.id
            with pytest.raises(openai.NotFoundError):
                bob.responses.retrieve(mine.id)
            with pytest.raises(openai.NotFoundError):
                bob.responses.create(model="fake", input="tell me", previous_response_id=mine.id)
            with pytest.raises(openai.NotFoundError):
                bob.responses.delete(mine.id)
            assert ann.responses.retrieve(mine.id).output_text == "hi there"
    finally:
        engine.stop()


def test_background_responses_are_polled_and_cancelled(
    fake: tuple[RunningServer, FakeEngine, openai.OpenAI],
) -> None:
    server, engine, client = fake
    queued = client.responses.create(model="fake", input="take your time", background=True)
    assert queued.status in ("queued", "in_progress")
    assert queued.background is True
    done = eventually(
        lambda: (r := client.responses.retrieve(queued.id)).status == "completed" and r, what="the response"
    )
    assert done.output_text == "hi there"

    engine.plan = ["hang"]
    stuck = client.responses.create(model="fake", input="never answered", background=True)
    eventually(
        lambda: client.responses.retrieve(stuck.id).status == "in_progress", what="the response's start"
    )
    cancelled = client.responses.cancel(stuck.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(stuck.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="is not a background response"):
        client.responses.cancel(client.responses.create(model="fake", input="now").id)
    with pytest.raises(openai.BadRequestError, match="a background response is stored"):
        client.responses.create(model="fake", input="later", background=True, store=False)
    r = server.http.get("/api/instances")
    assert r.status_code == 200  # the server goes on


def test_a_server_that_keeps_no_responses(tmp_path: Path) -> None:
    """MODELYARD_RESPONSES_KEEP=0: responses are answered, none is stored, and a background one,
    which could never be read, is refused."""
    engine = FakeEngine()
    url = engine.start()
    try:
        with serve(tmp_path / "home", one_per_category=False, exclusive=[], responses_keep=0) as server:
            body = {"url": url, "remote_model": "fake", "name": "fake", "category": "chat"}
            assert server.http.post("/api/models", json=body).status_code == 201
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
            answer = client.responses.create(model="fake", input="hi")
            assert (answer.output_text, answer.store) == ("hi there", False)
            with pytest.raises(openai.NotFoundError):
                client.responses.retrieve(answer.id)
            with pytest.raises(openai.BadRequestError, match="keeps no responses"):
                client.responses.create(model="fake", input="later", background=True)
            client.close()
    finally:
        engine.stop()


def test_the_gateways_own_chat_fields_reach_the_engine_as_it_takes_them(
    fake: tuple[RunningServer, FakeEngine, openai.OpenAI],
) -> None:
    _, engine, client = fake
    allowed: Any = {"type": "allowed_tools", "allowed_tools": {"mode": "auto",
                    "tools": [{"type": "function", "function": {"name": "get_weather"}}]}}  # fmt: skip
    other = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    weather = {"type": "function", "function": {k: WEATHER[k] for k in ("name", "description", "parameters")}}
    client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=7,
        reasoning_effort="low", prompt_cache_key="conv-1", metadata={"run": "1"}, safety_identifier="s1",
        tools=[weather, other], tool_choice=allowed,  # type: ignore[list-item]
    )  # fmt: skip
    sent = engine.posts[-1]
    assert sent["max_tokens"] == 7
    assert sent["chat_template_kwargs"] == {"enable_thinking": True, "reasoning_effort": "low"}
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
    assert sent["tool_choice"] == "auto"
    assert not {
        "max_completion_tokens",
        "reasoning_effort",
        "prompt_cache_key",
        "metadata",
        "safety_identifier",
    } & set(sent)
    with pytest.raises(openai.BadRequestError, match="reasoning_effort is one of"):
        client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": "hi"}], reasoning_effort="huge"
        )  # type: ignore[arg-type]
