"""Truncation's choice of what to keep: whole turns dropped from the front, the system prompt
and the latest turn kept, as few dropped as make the prompt fit. Counted here by a stand-in
for the engine's tokenizer (a token per character); llama-server counts them end to end in
tests/gateway/test_messages.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelyard.errors import RequestTooLarge
from modelyard.gateway import truncation

pytestmark = pytest.mark.unit

SYSTEM = {"role": "system", "content": "be brief"}


def chars(chat: dict[str, Any]) -> int:
    return sum(len(m.get("content") or "") for m in chat["messages"])


class Counter:
    """A token per character; remembers how often it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    async def __call__(self, chat: dict[str, Any]) -> int:
        self.asked += 1
        return chars(chat)


def conversation(turns: int, size: int = 10) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(turns):
        out += [
            {"role": "user", "content": f"{i}".ljust(size, "q")},
            {"role": "assistant", "content": "a" * size},
        ]
    return out


def cut(messages: list[dict[str, Any]], budget: int, counter: Counter | None = None) -> list[dict[str, Any]]:
    chat = {"messages": messages, "max_tokens": 4}
    kept: list[dict[str, Any]] = asyncio.run(truncation.truncated(chat, budget, counter or Counter()))[
        "messages"
    ]
    return kept


def test_the_oldest_turns_go_and_the_system_prompt_stays() -> None:
    asked = [SYSTEM, *conversation(6), {"role": "user", "content": "and now?"}]
    kept = cut(asked, budget=8 + 40 + 8)  # the system prompt, two turns, the question
    assert kept == [SYSTEM, *asked[-5:]]
    assert kept[1]["content"].startswith("4")  # whole turns: a question with its answer


def test_as_few_turns_go_as_make_it_fit() -> None:
    asked = [SYSTEM, *conversation(40), {"role": "user", "content": "and now?"}]
    for budget in (16, 37, 100, 436, 815):
        counter = Counter()
        kept = cut(asked, budget, counter)
        assert chars({"messages": kept}) <= budget
        more = [SYSTEM, *asked[-len(kept) - 1 :]]  # one message more: over the budget, or all of it
        assert chars({"messages": more}) > budget or len(kept) == len(asked)
        assert counter.asked <= 8  # a binary search, not one count per turn


def test_a_chat_that_fits_is_sent_as_it_came() -> None:
    asked = [SYSTEM, *conversation(2)]
    chat = {"messages": asked}
    assert asyncio.run(truncation.truncated(chat, 1000, Counter())) is chat


def test_a_latest_turn_longer_than_the_room_is_refused() -> None:
    asked = [SYSTEM, *conversation(3), {"role": "user", "content": "x" * 100}]
    with pytest.raises(RequestTooLarge) as refused:
        cut(asked, budget=50)
    assert "108 tokens with only the system prompt and the latest turn" in refused.value.message
    with pytest.raises(RequestTooLarge):
        cut([{"role": "user", "content": "x" * 100}], budget=50)  # one turn: nothing to drop


def test_a_tool_loop_stays_whole_in_its_turn() -> None:
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]}
    result = {"role": "tool", "tool_call_id": "c1", "content": "r" * 30}
    latest = [{"role": "user", "content": "weather?"}, call, result]
    system, groups = truncation.turns([SYSTEM, *conversation(3), *latest])
    assert system == [SYSTEM]
    assert groups[-1] == latest
    kept = cut([SYSTEM, *conversation(3), *latest], budget=8 + 8 + 30)
    assert kept == [SYSTEM, *latest]


def test_a_chat_that_opens_with_the_assistant() -> None:
    asked = [{"role": "assistant", "content": "hello!"}, *conversation(2)]
    system, groups = truncation.turns(asked)
    assert system == []
    assert [len(g) for g in groups] == [1, 2, 2]


def test_the_room_for_the_answer() -> None:
    assert truncation.answer_room({"max_tokens": 100}, 4096) == 100
    assert truncation.answer_room({"max_tokens": 32768}, 4096) == 2048  # half the context at most
    assert truncation.answer_room({"max_completion_tokens": 64}, 4096) == 64
    assert truncation.answer_room({}, 4096) == truncation.ANSWER_ROOM
    assert truncation.answer_room({}, 512) == 128  # a quarter of a small context


def test_the_request_asks_before_the_setting() -> None:
    assert truncation.wanted("auto", None)
    assert not truncation.wanted(None, None)
    assert truncation.wanted(None, "auto")
    assert not truncation.wanted("auto", "disabled")
