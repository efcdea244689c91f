"""An OpenAI-compatible engine that misbehaves on cue, registered with `modelyard import --url`:
it drops a connection before answering, or cuts a stream after its first chunk."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from background import Background

USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


class FakeEngine(Background):
    """/v1/models lists ``served`` (``fake``); /v1/chat/completions answers "hi there" (usage: 5 in, 2 out),
    after doing, to each request in turn, what ``plan`` says: "drop" (close the connection before
    any byte), "cut" (stream one chunk, then close), "hang" (answer nothing), "ok"; "ok" once
    the plan runs out. An error in ``errors`` is answered first, as it is; a chat message in ``replies`` (with its finish
    reason) is answered before "hi there": its reasoning, text and tool calls, streamed in
    pieces when asked. /v1/completions answers "hi there" too, and /v1/embeddings each input's
    ``vector_of``. Every body it gets is in ``posts`` (a chat's headers in ``headers``)."""

    def __init__(self, plan: list[str] | None = None, served: tuple[str, ...] = ("fake",)) -> None:
        super().__init__()
        self.plan = list(plan or [])
        self.served = served  # the models /v1/models lists
        self.posts: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []  # each chat request's headers
        self.errors: list[tuple[int, bytes]] = []  # answers to give first: (status, body)
        self.replies: list[tuple[dict[str, Any], str]] = []  # chat messages to answer: (message, finish)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/models", self.models),
            web.post("/v1/chat/completions", self.chat),
            web.post("/v1/completions", self.completions),
            web.post("/v1/embeddings", self.embeddings),
        ]

    async def models(self, _r: web.Request) -> web.Response:
        listed = [{"id": name, "object": "model"} for name in self.served]
        return web.json_response({"object": "list", "data": listed})

    async def chat(self, r: web.Request) -> web.StreamResponse:
        body = await r.json()
        self.posts.append(body)
        self.headers.append(dict(r.headers))
        if self.errors:
            status, answer = self.errors.pop(0)
            return web.Response(status=status, body=answer, content_type="application/json")
        step = self.plan.pop(0) if self.plan else "ok"
        if step == "hang":  # an answer that never comes, until the caller gives up
            while r.transport is not None and not r.transport.is_closing():
                await asyncio.sleep(0.02)
            raise web.HTTPInternalServerError()  # never sent: the connection is gone
        if step == "drop":
            assert r.transport is not None
            r.transport.abort()
            raise web.HTTPInternalServerError()  # never sent: the connection is gone
        message, finish = (
            self.replies.pop(0) if self.replies else ({"role": "assistant", "content": "hi there"}, "stop")
        )
        if not body.get("stream"):
            return web.json_response({"object": "chat.completion", "model": "fake", "usage": USAGE,
                                      "choices": [{"index": 0, "message": message, "finish_reason": finish}]})  # fmt: skip
        return await _stream(r, body, _chunks(message, finish), cut=step == "cut")

    async def completions(self, r: web.Request) -> web.StreamResponse:
        body = await r.json()
        self.posts.append(body)
        if not body.get("stream"):
            choice = {"index": 0, "text": "hi there", "finish_reason": "length"}
            return web.json_response({"object": "text_completion", "model": "fake", "usage": USAGE,
                                      "choices": [choice]})  # fmt: skip
        chunks = [
            {"object": "text_completion", "choices": [{"index": 0, "text": piece, "finish_reason": end}]}
            for piece, end in (("hi", None), (" there", "length"))
        ]
        return await _stream(r, body, chunks)

    async def embeddings(self, r: web.Request) -> web.Response:
        body = await r.json()
        self.posts.append(body)
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        data = [{"object": "embedding", "index": i, "embedding": vector_of(t)} for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return web.json_response({"object": "list", "model": "fake", "data": data, "usage": usage})


async def _stream(
    r: web.Request, body: dict[str, Any], chunks: list[dict[str, Any]], *, cut: bool = False
) -> web.StreamResponse:
    """``chunks`` as server-sent events, the usage if the request asks for it, then [DONE]; with
    ``cut``, the connection closes after the first chunk."""
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await out.prepare(r)
    for chunk in chunks:
        await out.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        if cut:
            assert r.transport is not None
            r.transport.abort()
            return out
    if (body.get("stream_options") or {}).get("include_usage"):
        await out.write(b"data: " + json.dumps({"choices": [], "usage": USAGE}).encode() + b"\n\n")
    await out.write(b"data: [DONE]\n\n")
    return out


def _chunks(message: dict[str, Any], finish: str) -> list[dict[str, Any]]:
    """A chat message as stream chunks: its reasoning and text word by word, each tool call's
    name with the first half of its arguments, then the rest."""
    deltas: list[dict[str, Any]] = []
    for key in ("reasoning_content", "content"):
        words = (message.get(key) or "").split(" ")
        deltas += [{key: word if n == 0 else " " + word} for n, word in enumerate(words) if message.get(key)]
    for n, call in enumerate(message.get("tool_calls") or []):
        args = call["function"]["arguments"]
        half = len(args) // 2
        first = {"index": n, "id": call["id"], "type": "function",
                 "function": {"name": call["function"]["name"], "arguments": args[:half]}}  # fmt: skip
        deltas += [
            {"tool_calls": [first]},
            {"tool_calls": [{"index": n, "function": {"arguments": args[half:]}}]},
        ]
    chunks = [{"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d}]} for d in deltas]
    chunks[-1]["choices"][0]["finish_reason"] = finish
    return chunks


def vector_of(text: str) -> list[float]:
    """The fake engine's embedding of ``text``: its length and word count, not of unit length."""
    return [float(len(text)), float(len(text.split())), 0.0, 1.0]
