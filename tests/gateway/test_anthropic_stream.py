"""A native Messages stream (llama-server's) always opens with message_start: llama-server leaves
it out when its first token is part of a character, and Anthropic's clients then have no
message to build (seen with a tiny random GGUF; the gateway adds the opening)."""

from __future__ import annotations

import json

from modelyard.gateway.anthropic import opening_for

OPENED = b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1"}}\n\n'
UNOPENED = b'event: content_block_start\ndata: {"type":"content_block_start","index":0}\n\n'


def test_a_stream_that_opens_is_left_alone() -> None:
    assert opening_for(OPENED, "gguf-chat") == b""


def test_a_stream_without_its_opening_gets_one() -> None:
    added = opening_for(UNOPENED, "gguf-chat")
    kind, data = added.split(b"\n")[:2]
    assert kind == b"event: message_start"
    message = json.loads(data.removeprefix(b"data: "))["message"]
    assert (message["type"], message["role"], message["model"], message["content"]) == (
        "message",
        "assistant",
        "gguf-chat",
        [],
    )
    assert message["id"].startswith("msg_")
