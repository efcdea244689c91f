"""Forced tool calls, the pure part: the schema a tool_choice forces, the request the engine gets,
and its JSON turned back into tool_calls (streamed too)."""

from __future__ import annotations

import json

import orjson
import pytest

from modelyard.errors import EngineError, InvalidRequest
from modelyard.gateway import tools

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [
    {"type": "function", "function": {"name": "weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "time"}},
]


def test_what_each_tool_choice_forces() -> None:
    assert tools.forced({"tools": TOOLS}) is None
    assert tools.forced({"tools": TOOLS, "tool_choice": "auto"}) is None
    assert tools.forced({"tools": TOOLS, "tool_choice": "none"}) is None
    named = tools.forced(
        {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "weather"}}}
    )
    assert named is not None
    assert not named.parallel
    assert named.schema["properties"]["name"]["const"] == "weather"
    assert named.schema["properties"]["arguments"] == WEATHER
    required = tools.forced({"tools": TOOLS, "tool_choice": "required"})
    assert required is not None
    assert required.parallel  # OpenAI's default: parallel calls allowed
    assert required.schema["type"] == "array"
    assert (required.schema["minItems"], required.schema["maxItems"]) == (1, tools.MAX_CALLS)
    assert [s["properties"]["name"]["const"] for s in required.schema["items"]["anyOf"]] == [
        "weather",
        "time",
    ]
    one = tools.forced({"tools": TOOLS, "tool_choice": "required", "parallel_tool_calls": False})
    assert one is not None
    assert "anyOf" in one.schema
    # a function without parameters takes an object
    assert one.schema["anyOf"][1]["properties"]["arguments"] == {"type": "object", "properties": {}}


def test_bad_tool_choices_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="not among the tools"):
        tools.forced({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}})
    with pytest.raises(InvalidRequest, match="tool_choice needs tools"):
        tools.forced({"tool_choice": "required"})
    with pytest.raises(InvalidRequest, match="tool_choice must be"):
        tools.forced({"tools": TOOLS, "tool_choice": "sometimes"})
    with pytest.raises(InvalidRequest, match="each tool must be"):
        tools.forced({"tools": [{"type": "function"}], "tool_choice": "required"})


def test_the_engine_gets_a_schema_and_its_json_becomes_calls() -> None:
    body = {"model": "m", "messages": [], "tools": TOOLS, "tool_choice": "required", "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    force = tools.forced(body)
    assert force is not None
    sent = tools.constrained(body, force)
    assert sent["tools"] == TOOLS  # the template still shows them to the model
    assert sent["tool_choice"] == "none"  # no call the engine's own way: the schema makes them
    assert "stream" not in sent
    assert sent["response_format"]["json_schema"]["schema"] == force.schema
    content = '[{"name": "weather", "arguments": {"city": "Paris"}}, {"name": "time", "arguments": {}}]'
    answer = {"id": "x", "created": 1, "model": "m", "usage": {"prompt_tokens": 3},
              "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}  # fmt: skip
    done = tools.answer_with_calls(answer, force)
    choice = done["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("weather", {"city": "Paris"}), ("time", {}),
    ]  # fmt: skip
    assert len({c["id"] for c in calls}) == 2
    # streamed: the role, a delta per call, the finish reason, the usage, [DONE]
    events = tools.stream_of(done, usage=True).split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    chunks = [orjson.loads(e[6:]) for e in events[:-2]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    assert [c["choices"][0]["delta"]["tool_calls"][0]["index"] for c in chunks[1:3]] == [0, 1]
    assert chunks[3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[4]["usage"] == {"prompt_tokens": 3}


def test_an_answer_off_the_schema_is_an_engine_error() -> None:
    force = tools.forced({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "time"}}})
    assert force is not None

    def answer(content: str) -> dict[str, object]:
        return {"choices": [{"message": {"content": content}}]}

    with pytest.raises(EngineError, match="not JSON"):
        tools.answer_with_calls(answer("sure!"), force)
    # a raw control character in a string (xgrammar lets one into a string with a maxLength):
    # taken, and the arguments written out escaped
    raw = tools.answer_with_calls(answer('{"name": "time", "arguments": {"x": "a\x16b"}}'), force)
    arguments = raw["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"x": "a\x16b"}
    assert "\x16" not in arguments
    cut = {"choices": [{"message": {"content": '{"name": "ti'}, "finish_reason": "length"}]}
    with pytest.raises(InvalidRequest, match="raise max_tokens"):
        tools.answer_with_calls(cut, force)
    with pytest.raises(EngineError, match="did not follow the tool-call schema"):
        tools.answer_with_calls(answer('{"name": "weather", "arguments": {}}'), force)
    # calls the engine parsed itself are kept as they are
    own = [{"id": "call_1", "type": "function", "function": {"name": "time", "arguments": "{}"}}]
    kept = tools.answer_with_calls({"choices": [{"message": {"content": "", "tool_calls": own}}]}, force)
    assert kept["choices"][0]["message"]["tool_calls"] == own
