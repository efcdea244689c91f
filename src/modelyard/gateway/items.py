"""OpenAI's Responses API mapped onto chat completions and back: a request's input items as chat
messages, a chat answer as a response's output items, and a stream translator from chat chunks
to the Responses events. Pure functions: no I/O."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from modelyard.errors import InvalidRequest
from modelyard.gateway.fields import thinking

# what a request may carry that no chat engine does: refused by name
HOSTED_TOOLS = ("web_search", "file_search", "computer", "code_interpreter", "image_generation", "mcp")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: content is a string or a list of parts")
    texts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("input_text", "output_text", "text"):
            texts.append(str(part.get("text", "")))
    return "".join(texts)


def _parts(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A message's content as chat content: text, or parts when it holds images."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: content is a string or a list of parts")
    parts: list[dict[str, Any]] = []
    for n, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise InvalidRequest(
                    f"{where}.content[{n}]: an input_image needs image_url (a data URL or a local file)"
                )
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal", ""))})
        else:
            raise InvalidRequest(
                f"{where}.content[{n}]: a part of type {kind!r} is not supported",
                hint="input_text, output_text and input_image are",
            )
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def messages_of(items: list[Any]) -> list[dict[str, Any]]:
    """A request's input items (conversations.input_items) as chat messages. Function calls
    that follow each other are one assistant turn; reasoning items are the model's own and are
    left out, as chat templates leave out earlier turns' reasoning."""
    out: list[dict[str, Any]] = []
    for n, item in enumerate(items):
        where = f"input[{n}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where}: an item is an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise InvalidRequest(f"{where}: role is one of user, assistant, system, developer")
            content = _parts(item.get("content", ""), where)
            out.append({"role": role, "content": content})
        elif kind == "function_call":
            call = {"id": str(item.get("call_id", "")), "type": "function",
                    "function": {"name": str(item.get("name", "")), "arguments": str(item.get("arguments", ""))}}  # fmt: skip
            if out and out[-1]["role"] == "assistant":  # its text, or its calls, before this call
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output", "")
            text = output if isinstance(output, str) else _text_of(output, where)
            out.append({"role": "tool", "tool_call_id": str(item.get("call_id", "")), "content": text})
        elif kind == "reasoning":
            continue
        else:
            raise InvalidRequest(
                f"{where}: an item of type {kind!r} is not supported",
                hint="message, function_call, function_call_output and reasoning are",
            )
    return out


def _tools(tools: list[Any]) -> list[dict[str, Any]]:
    out = []
    for n, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            hosted = f" (a hosted tool: {', '.join(HOSTED_TOOLS)} run on OpenAI's servers)" if kind else ""
            raise InvalidRequest(f"tools[{n}]: a tool of type {kind!r} is not supported{hosted}",
                                 hint="function tools are")  # fmt: skip
        function = {"name": tool.get("name"), "parameters": tool.get("parameters") or {"type": "object"}}
        if tool.get("description"):
            function["description"] = tool["description"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest(
        "tool_choice is auto, none, required or {type: function, name}",
        hint="hosted tools and allowed_tools are not supported",
    )


def _format(text: Any) -> dict[str, Any] | None:
    shape = (text or {}).get("format") if isinstance(text, dict) else None
    if shape is None or shape.get("type") == "text":
        return None
    if shape.get("type") == "json_object":
        return {"type": "json_object"}
    if shape.get("type") == "json_schema":
        schema = {"name": shape.get("name", "answer"), "schema": shape.get("schema") or {}}
        if shape.get("strict") is not None:
            schema["strict"] = shape["strict"]
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest("text.format's type is text, json_object or json_schema")


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses request (checked by ResponsesRequest, its input as items) as a chat
    completion request; the model is set by the caller."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    messages += messages_of(body["input"])
    if not messages:
        raise InvalidRequest("input holds no message", hint="give it a string or a list of items")
    out: dict[str, Any] = {"messages": messages}
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "parallel_tool_calls", "user", "top_logprobs", "seed"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        out["tool_choice"] = _tool_choice(body["tool_choice"])
    if (shape := _format(body.get("text"))) is not None:
        out["response_format"] = shape
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:  # the chat templates' thinking switch, which every engine that chats takes
        out["chat_template_kwargs"] = thinking(effort, "reasoning.effort")
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def usage_of(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    given = usage.get("prompt_tokens", 0) or 0
    made = usage.get("completion_tokens", 0) or 0
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0) or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0) or 0
    return {"input_tokens": given, "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": made, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": given + made}  # fmt: skip


def echo(body: dict[str, Any]) -> dict[str, Any]:
    """What a response repeats of its request."""
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "truncation": body.get("truncation") or "disabled",
        "user": body.get("user"),
        "background": body.get("background", False),
    }


def shell(rid: str, model: str, body: dict[str, Any], status: str) -> dict[str, Any]:
    """A response with no output yet."""
    return {"id": rid, "object": "response", "created_at": int(time.time()), "status": status,
            "model": model, "output": [], "error": None, "incomplete_details": None, "usage": None,
            **echo(body)}  # fmt: skip


def _reasoning(text: str) -> dict[str, Any]:
    return {"id": new_id("rs"), "type": "reasoning", "summary": [], "status": "completed",
            "content": [{"type": "reasoning_text", "text": text}]}  # fmt: skip


def _message(text: str) -> dict[str, Any]:
    return {"id": new_id("msg"), "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}  # fmt: skip


def _call(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    return {"id": new_id("fc"), "type": "function_call", "status": "completed",
            "call_id": call.get("id") or new_id("call"), "name": fn.get("name", ""),
            "arguments": fn.get("arguments") or "{}"}  # fmt: skip


def finished(response: dict[str, Any], finish: str | None, usage: dict[str, Any] | None) -> dict[str, Any]:
    """``response`` with its end: completed, or incomplete when the tokens ran out."""
    short = finish == "length"
    response["status"] = "incomplete" if short else "completed"
    response["incomplete_details"] = {"reason": "max_output_tokens"} if short else None
    response["usage"] = usage_of(usage)
    if short:
        for item in response["output"]:
            item["status"] = "incomplete"
    return response


def response(answer: dict[str, Any], rid: str, model: str, body: dict[str, Any]) -> dict[str, Any]:
    """A chat completion as a response."""
    choice = (answer.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    out = shell(rid, model, body, "completed")
    if msg.get("reasoning_content"):
        out["output"].append(_reasoning(msg["reasoning_content"]))
    if msg.get("content"):
        out["output"].append(_message(msg["content"]))
    out["output"] += [_call(call) for call in msg.get("tool_calls") or []]
    return finished(out, choice.get("finish_reason"), answer.get("usage"))


class StreamTranslator:
    """Chat completion chunks in, the Responses stream's events out (each with its
    sequence_number); ``response`` is the whole response once the stream has ended."""

    def __init__(self, rid: str, model: str, body: dict[str, Any]) -> None:
        self.response = shell(rid, model, body, "in_progress")
        self.sequence = 0
        self.open: dict[str, Any] | None = None  # the reasoning or message item being written
        self.calls: dict[int, dict[str, Any]] = {}  # the chunk's tool call index -> its item
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None

    def _event(self, kind: str, **data: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def start(self) -> bytes:
        return self._event("response.created", response=self.response) + self._event(
            "response.in_progress", response=self.response
        )

    @property
    def _index(self) -> int:
        return len(self.response["output"]) - 1

    def _add(self, item: dict[str, Any]) -> bytes:
        self.response["output"].append(item)
        return self._event("response.output_item.added", output_index=self._index, item=item)

    def _open(self, kind: str) -> bytes:
        out = self._close()
        item: dict[str, Any]
        if kind == "reasoning":
            item = {
                "id": new_id("rs"),
                "type": "reasoning",
                "summary": [],
                "content": [],
                "status": "in_progress",
            }
            part: dict[str, Any] = {"type": "reasoning_text", "text": ""}
        else:
            item = {"id": new_id("msg"), "type": "message", "role": "assistant", "content": [],
                    "status": "in_progress"}  # fmt: skip
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        out += self._add(item)
        self.open = item
        item["content"].append(part)
        return out + self._event(
            "response.content_part.added", item_id=item["id"], output_index=self._index, content_index=0,
            part={**part, "text": ""},
        )  # fmt: skip

    def _close(self) -> bytes:
        item, self.open = self.open, None
        if item is None:
            return b""
        index = self.response["output"].index(item)
        part = item["content"][0]
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        if item["type"] == "reasoning":
            out = self._event("response.reasoning_text.done", **where, text=part["text"])
        else:
            out = self._event("response.output_text.done", **where, text=part["text"], logprobs=[])
        out += self._event("response.content_part.done", **where, part=part)
        item["status"] = "completed"
        return out + self._event("response.output_item.done", output_index=index, item=item)

    def feed(self, chunk: dict[str, Any]) -> bytes:
        out = b""
        self.usage = chunk.get("usage") or self.usage
        for choice in chunk.get("choices") or []:
            self.finish = choice.get("finish_reason") or self.finish
            delta = choice.get("delta") or {}
            for kind, key, event in (("reasoning", "reasoning_content", "response.reasoning_text.delta"),
                                     ("message", "content", "response.output_text.delta")):  # fmt: skip
                text = delta.get(key)
                if not text:
                    continue
                if self.open is None or self.open["type"] != kind:
                    out += self._open(kind)
                assert self.open is not None
                self.open["content"][0]["text"] += text
                where = {"item_id": self.open["id"], "output_index": self._index, "content_index": 0}
                extra: dict[str, Any] = {"logprobs": []} if kind == "message" else {}
                out += self._event(event, **where, delta=text, **extra)
            for call in delta.get("tool_calls") or []:
                out += self._call(call)
        return out

    def _call(self, call: dict[str, Any]) -> bytes:
        fn = call.get("function") or {}
        position = call.get("index", 0)
        out = b""
        if position not in self.calls:
            out += self._close()
            item = {"id": new_id("fc"), "type": "function_call", "status": "in_progress",
                    "call_id": call.get("id") or new_id("call"), "name": fn.get("name", ""), "arguments": ""}  # fmt: skip
            self.calls[position] = item
            out += self._add(item)
        item = self.calls[position]
        if fn.get("arguments"):
            item["arguments"] += fn["arguments"]
            index = self.response["output"].index(item)
            out += self._event(
                "response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                delta=fn["arguments"],
            )  # fmt: skip
        return out

    def end(self) -> bytes:
        out = self._close()
        for item in self.calls.values():
            index = self.response["output"].index(item)
            item["arguments"] = item["arguments"] or "{}"
            out += self._event(
                "response.function_call_arguments.done", item_id=item["id"], output_index=index,
                name=item["name"], arguments=item["arguments"],
            )  # fmt: skip
            item["status"] = "completed"
            out += self._event("response.output_item.done", output_index=index, item=item)
        finished(self.response, self.finish, self.usage)
        kind = "response.incomplete" if self.response["status"] == "incomplete" else "response.completed"
        return out + self._event(kind, response=self.response)

    def failed(self, code: str, message: str) -> bytes:
        """The stream's end when the engine failed in the middle."""
        self.response["status"] = "failed"
        self.response["error"] = {"code": code, "message": message}
        return self._event("response.failed", response=self.response)
