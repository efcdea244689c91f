"""What names a conversation for session affinity: its opening, which stays as it grows."""

from __future__ import annotations

import orjson

from modelyard.gateway.upstream import prefix_of


def body(**kw: object) -> bytes:
    return orjson.dumps({"model": "m", "max_tokens": 5, **kw})


def test_a_conversation_keeps_its_prefix_as_it_grows() -> None:
    system = {"role": "system", "content": "You are terse."}
    turn1 = [system, {"role": "user", "content": "hi"}]
    turn2 = [*turn1, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]
    assert prefix_of(body(messages=turn1)) == prefix_of(body(messages=turn2, temperature=0.5))
    other = [system, {"role": "user", "content": "something else"}]
    assert prefix_of(body(messages=other)) != prefix_of(body(messages=turn1))
    assert prefix_of(body(prompt="Once upon a time")) == prefix_of(body(prompt="Once upon a time", n=1))
    assert prefix_of(body(input="no prompt here")) is None
    assert prefix_of(b"not json") is None


def test_a_prompt_cache_key_names_the_conversation_instead() -> None:
    one = body(messages=[{"role": "user", "content": "hi"}])
    other = body(messages=[{"role": "user", "content": "something else"}])
    assert prefix_of(one, "conv-7") == prefix_of(other, "conv-7")  # the key, not the words, routes
    assert prefix_of(one, "conv-7") != prefix_of(one, "conv-8")
    assert prefix_of(one, None) == prefix_of(one)
