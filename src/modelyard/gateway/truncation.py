"""Truncation (the text-generation-webui manual's "truncate the prompt to this length"): a chat
whose prompt and answer would not fit the model's context loses its oldest turns, the system
prompt and the latest turn kept, instead of being refused. Off unless the model's settings say
``truncation: auto`` (or a Responses request asks for it); refusing stays the default.

A prompt's tokens are counted by the model's own engine (its chat template, its tokenizer), and
only when its bytes could exceed the room: no tokenizer makes more tokens than a text has
bytes, so the usual request is never counted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from modelyard.errors import RequestTooLarge

SYSTEM = ("system", "developer")
SLACK = 128  # tokens a chat template may add beyond the text (a default system prompt, role markers)
ANSWER_ROOM = 512  # tokens kept for the answer when the request sets no max_tokens


def wanted(settings_value: Any, asked: str | None) -> bool:
    """Whether a request is cut to fit: as it asks (a Responses request's ``truncation``), else
    as the model's settings say."""
    return (asked or settings_value) == "auto"


def answer_room(chat: dict[str, Any], context: int) -> int:
    """The tokens kept free for the answer: the request's max_tokens (half the context at most:
    a larger one is cut short by the context's end, as it is without truncation), else
    ANSWER_ROOM (a quarter of the context at most)."""
    asked = chat.get("max_tokens") or chat.get("max_completion_tokens")
    if isinstance(asked, int) and asked > 0:
        return min(asked, context // 2)
    return min(ANSWER_ROOM, context // 4)


def may_overflow(size: int, budget: int) -> bool:
    """Whether a request of ``size`` bytes could hold more than ``budget`` prompt tokens."""
    return size + SLACK > budget


def turns(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """The leading system messages, and the rest as turns: each user message with the messages
    that answer it (the assistant's, its tool calls' results), so that a cut never leaves an
    answer without its question or a tool result without its call."""
    head = 0
    while head < len(messages) and messages[head].get("role") in SYSTEM:
        head += 1
    groups: list[list[dict[str, Any]]] = []
    for message in messages[head:]:
        if message.get("role") == "user" or not groups:
            groups.append([])
        groups[-1].append(message)
    return messages[:head], groups


async def truncated(
    chat: dict[str, Any], budget: int, count: Callable[[dict[str, Any]], Awaitable[int]]
) -> dict[str, Any]:
    """``chat`` (a chat completion request) with as few of its oldest turns dropped as make its
    prompt ``budget`` tokens at most (``count``: a request's prompt tokens); RequestTooLarge when
    even the system prompt and the latest turn are more."""
    system, groups = turns(chat["messages"])

    def keeping(dropped: int) -> dict[str, Any]:
        return {**chat, "messages": system + [m for group in groups[dropped:] for m in group]}

    whole = await count(chat)
    if whole <= budget:
        return chat
    last = len(groups) - 1  # the most turns that can go: all but the latest
    least = whole if last < 1 else await count(keeping(last))
    if least > budget:
        raise RequestTooLarge(
            f"the prompt has {least} tokens with only the system prompt and the latest turn; "
            f"{budget} fit beside the answer's room",
            hint="shorten the latest message, lower max_tokens, or load the model with a larger n_ctx",
        )
    low, high = 1, last  # the fewest turns to drop lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        if await count(keeping(middle)) <= budget:
            high = middle
        else:
            low = middle + 1
    return keeping(high)
