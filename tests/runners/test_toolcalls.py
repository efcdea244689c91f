"""Tool calls read out of a model's text in its family's format, and held back from a stream's
content until they are known."""

from __future__ import annotations

import json

import pytest

from modelyard.runners.toolcalls import HERMES, LLAMA3, MISTRAL, Holder, family_of, parse, template_messages


def args(call: dict[str, object]) -> object:
    return json.loads(call["function"]["arguments"])  # type: ignore[index]


def test_the_template_names_the_family() -> None:
    assert family_of("{% for tool in tools %}<tools>{{ tool }}</tools>... <tool_call>") == HERMES
    assert family_of("[AVAILABLE_TOOLS] ... [TOOL_CALLS]") == MISTRAL
    assert family_of("<|start_header_id|>ipython ... parameters ... <|python_tag|>") == LLAMA3
    assert family_of(None) == HERMES


@pytest.mark.parametrize(
    ("family", "text", "content", "calls"),
    [
        (HERMES, 'Let me look.\n<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_call>'
                 '\n<tool_call>{"name": "time", "arguments": {}}</tool_call>',
         "Let me look.", [("weather", {"city": "Paris"}), ("time", {})]),
        (MISTRAL, '[TOOL_CALLS][{"name": "weather", "arguments": {"city": "Oslo"}}]', "",
         [("weather", {"city": "Oslo"})]),
        (LLAMA3, '<|python_tag|>{"name": "weather", "parameters": {"city": "Rome"}}', "",
         [("weather", {"city": "Rome"})]),
        (LLAMA3, "Rome is sunny.", "Rome is sunny.", []),
        (HERMES, "<tool_call>{not json</tool_call>", "<tool_call>{not json</tool_call>", []),
    ],
)  # fmt: skip
def test_calls_are_parsed_and_never_left_in_the_content(
    family: str, text: str, content: str, calls: list[tuple[str, object]]
) -> None:
    got_content, got = parse(text, family)
    assert got_content == content
    assert [(c["function"]["name"], args(c)) for c in got] == calls
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in got)


def test_a_stream_holds_back_what_may_be_a_call() -> None:
    holder = Holder(HERMES)
    out = [
        holder.feed(p) for p in ["Checking", " now <tool", "_call>", '{"name": "f", "arguments": {"x": 1}}']
    ]
    assert "".join(out) == "Checking now "  # "<tool" waited until it was known
    rest, calls = holder.finish()
    assert rest == ""
    assert [(c["function"]["name"], args(c)) for c in calls] == [("f", {"x": 1})]
    plain = Holder(HERMES)
    assert plain.feed("a <to") == "a "
    assert plain.feed("p") == "<top"  # it was not a call after all
    assert plain.finish() == ("", [])
    llama = Holder(LLAMA3)
    assert llama.feed('{"name": "f", ') == ""
    assert llama.feed('"parameters": {}}') == ""
    assert [c["function"]["name"] for c in llama.finish()[1]] == ["f"]
    words = Holder(LLAMA3)
    assert words.feed("Hello") == "Hello"
    assert words.finish() == ("", [])


def test_messages_get_their_call_arguments_as_objects() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    messages = [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": "2"},
    ]
    converted = template_messages(messages)
    assert converted[0]["tool_calls"][0]["function"]["arguments"] == {"x": 1}
    assert messages[0]["tool_calls"][0]["function"]["arguments"] == '{"x": 1}'  # the request is untouched
