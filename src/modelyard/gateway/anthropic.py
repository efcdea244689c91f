"""Anthropic's Messages API mapped onto OpenAI's chat completions and back, for engines that do
not serve /v1/messages themselves. Pure functions and a stream translator: no I/O."""

from __future__ import annotations

import json
import uuid
from typing import Any

import orjson

from modelyard.errors import InvalidRequest

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"
    )


def _parts(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64":
                url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
            elif source.get("type") == "url":
                url = source.get("url", "")
            else:
                raise InvalidRequest(f"an image source of type {source.get('type')!r} is not supported")
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def _messages(message: dict[str, Any]) -> list[dict[str, Any]]:
    """One Anthropic message as OpenAI messages (tool results are messages of their own)."""
    role, content = message.get("role"), message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    blocks = [b for b in content or [] if isinstance(b, dict)]
    out: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("type") == "tool_result":
            out.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""),
                        "content": _text(block.get("content"))})  # fmt: skip
    calls = [
        {"id": b.get("id", ""), "type": "function",
         "function": {"name": b.get("name", ""), "arguments": json.dumps(b.get("input") or {})}}
        for b in blocks if b.get("type") == "tool_use"
    ]  # fmt: skip
    parts = _parts(blocks)
    if parts or calls:
        text_only = all(p["type"] == "text" for p in parts)
        msg: dict[str, Any] = {
            "role": role,
            "content": "".join(p["text"] for p in parts) if text_only else parts,
        }
        if calls:
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """A Messages request as a chat completion request (the model is set by the caller)."""
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append({"role": "system", "content": _text(body["system"])})
    for message in body.get("messages") or []:
        messages += _messages(message)
    out: dict[str, Any] = {"messages": messages, "max_tokens": body["max_tokens"]}
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    if body.get("tools"):
        out["tools"] = [
            {"type": "function", "function": {"name": t["name"], "description": t.get("description", ""),
                                              "parameters": t.get("input_schema") or {}}}
            for t in body["tools"]
        ]  # fmt: skip
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "any":
            out["tool_choice"] = "required"
        elif kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name", "")}}
        elif kind in ("auto", "none"):
            out["tool_choice"] = kind
    thinking = body.get("thinking")
    if isinstance(thinking, dict):  # {type: enabled, budget_tokens} or {type: disabled}
        if thinking.get("type") == "disabled":
            out["chat_template_kwargs"] = {"enable_thinking": False}
        elif isinstance(thinking.get("budget_tokens"), int):
            out["thinking_budget_tokens"] = thinking["budget_tokens"]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def _tool_uses(calls: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for call in calls or []:
        fn = call.get("function") or {}
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            args = {"arguments": fn.get("arguments")}
        out.append({"type": "tool_use", "id": call.get("id") or "toolu_" + uuid.uuid4().hex[:20],
                    "name": fn.get("name", ""), "input": args})  # fmt: skip
    return out


def message(answer: dict[str, Any], model: str) -> dict[str, Any]:
    """A chat completion as a Messages answer."""
    choice = (answer.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if msg.get("reasoning_content"):
        content.append({"type": "thinking", "thinking": msg["reasoning_content"], "signature": ""})
    if msg.get("content"):
        content.append({"type": "text", "text": msg["content"]})
    content += _tool_uses(msg.get("tool_calls"))
    usage = answer.get("usage") or {}
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("prompt_tokens", 0),
            "output_tokens": usage.get("completion_tokens", 0),
        },
    }


def event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


START = b"event: message_start"


def opening_for(head: bytes, model: str) -> bytes:
    """The message_start a native stream beginning with ``head`` lacks (llama-server leaves it
    out when its first token is part of a character), or nothing when it has one."""
    if head.lstrip().startswith(START):
        return b""
    return StreamTranslator(model).start()


class StreamTranslator:
    """Chat completion chunks in, Messages stream events out."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.index = -1
        self.open: str | None = None  # the kind of the content block open now
        self.finish: str | None = None
        self.usage: dict[str, Any] = {}
        self.tools: dict[int, int] = {}  # the chunk's tool call index -> our block index

    def start(self) -> bytes:
        opening: dict[str, Any] = {"id": message_id(), "type": "message", "role": "assistant", "model": self.model,
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 0, "output_tokens": 0}}  # fmt: skip
        return event("message_start", {"message": opening}) + event("ping", {})

    def _block(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.index += 1
        self.open = kind
        return out + event("content_block_start", {"index": self.index, "content_block": block})

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return event("content_block_stop", {"index": self.index})

    def feed(self, chunk: dict[str, Any]) -> bytes:
        out = b""
        self.usage = chunk.get("usage") or self.usage
        for choice in chunk.get("choices") or []:
            self.finish = choice.get("finish_reason") or self.finish
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                if self.open != "thinking":
                    out += self._block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                out += event("content_block_delta", {"index": self.index, "delta": {
                    "type": "thinking_delta", "thinking": delta["reasoning_content"]}})  # fmt: skip
            if delta.get("content"):
                if self.open != "text":
                    out += self._block("text", {"type": "text", "text": ""})
                out += event("content_block_delta", {"index": self.index,
                                                     "delta": {"type": "text_delta", "text": delta["content"]}})  # fmt: skip
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") or {}
                position = call.get("index", 0)
                if position not in self.tools:
                    block = {"type": "tool_use", "id": call.get("id") or "toolu_" + uuid.uuid4().hex[:20],
                             "name": fn.get("name", ""), "input": {}}  # fmt: skip
                    out += self._block("tool_use", block)
                    self.tools[position] = self.index
                if fn.get("arguments"):
                    out += event("content_block_delta", {"index": self.tools[position], "delta": {
                        "type": "input_json_delta", "partial_json": fn["arguments"]}})  # fmt: skip
        return out

    def end(self) -> bytes:
        reason = STOP_REASONS.get(self.finish or "stop", "end_turn")
        usage = {"input_tokens": self.usage.get("prompt_tokens", 0),
                 "output_tokens": self.usage.get("completion_tokens", 0)}  # fmt: skip
        return (
            self._close()
            + event(
                "message_delta", {"delta": {"stop_reason": reason, "stop_sequence": None}, "usage": usage}
            )
            + event("message_stop", {})
        )
