"""What routing reads of a text request (upstream.prompt_of): a chat's tools and messages in
order, so that a conversation's next turn begins with its last; a completion's prompt; the
session that pins it."""

from __future__ import annotations

import orjson

from modelyard.gateway.upstream import prompt_of
from modelyard.runtime.routing import Prompt


def body(**kw: object) -> bytes:
    return orjson.dumps({"model": "m", "max_tokens": 5, **kw})


def prompt(raw: bytes, session: str | None = None) -> Prompt:
    found = prompt_of(raw, session)
    assert found is not None
    return found


SYSTEM = {"role": "system", "content": "You are terse. " * 60}


def test_a_conversations_next_turn_begins_with_its_last() -> None:
    turn1 = [SYSTEM, {"role": "user", "content": "hi"}]
    turn2 = [*turn1, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]
    one, two = prompt(body(messages=turn1)), prompt(body(messages=turn2, temperature=0.5))
    assert one.blocks
    assert two.blocks[: len(one.blocks)] == one.blocks
    other = prompt(body(messages=[{**SYSTEM, "content": "You are verbose. " * 60}]))
    assert not set(other.blocks) & set(one.blocks)
    # tools come first in the prompt an engine renders: other tools, another prompt
    tools = [{"type": "function", "function": {"name": "f" * 300, "parameters": {}}}]
    assert prompt(body(messages=turn1, tools=tools)).blocks[0] != one.blocks[0]


def test_a_completion_is_routed_by_its_prompt_and_others_not_at_all() -> None:
    text = "Once upon a time " * 40
    assert prompt(body(prompt=text)).blocks == prompt(body(prompt=text, n=1)).blocks
    assert prompt(body(prompt=[text])).blocks == prompt(body(prompt=text)).blocks
    assert prompt_of(body(input="no prompt here")) is None
    assert prompt_of(b"not json") is None


def test_a_session_names_the_conversation() -> None:
    raw = body(messages=[{"role": "user", "content": "hi"}])
    assert prompt(raw, "conv-7").session == "conv-7"
    assert prompt(raw).session is None
