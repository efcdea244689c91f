"""POST /v1/messages: Anthropic's Messages API. An engine that serves it (llama-server) gets the
request as it came and its answer goes back as it comes; for the others it is translated onto
their chat completions (anthropic.py) and back, streaming too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError

from modelyard.errors import InvalidRequest, ModelyardError
from modelyard.gateway import anthropic, tools
from modelyard.gateway.calls import admit, begun, engine_call, translated_chat
from modelyard.gateway.protocol import MessagesRequest, documented
from modelyard.http_errors import ANTHROPIC, engine_refusal
from modelyard.runtime.admission import Ticket
from modelyard.runtime.queue import ClientGone
from modelyard.validation import describe

router = APIRouter(prefix="/v1", tags=["anthropic"])


@router.post("/messages", openapi_extra=documented(MessagesRequest))
async def messages(request: Request) -> Response:
    """Anthropic's Messages: {model, max_tokens, messages, system?, stream?, tools?, ...}."""
    raw = await request.body()
    try:
        body = MessagesRequest.model_validate_json(raw)
        target = admit(request, body.model, "chat")
        payload = orjson.loads(raw)
        force = tools.forced(anthropic.chat_request(payload))
        if target.native_messages and force is None:
            return await _native(request, target, payload, body.stream)
        return await _translated(request, target, payload, body.stream, force)
    except ValidationError as e:
        return ANTHROPIC.answer(InvalidRequest(describe(e.errors())))
    except ClientGone:
        return Response(status_code=499)
    except ModelyardError as e:
        return ANTHROPIC.answer(e)


async def _native(request: Request, target: Ticket, payload: dict[str, Any], stream: bool) -> Response:
    if not stream:
        async with engine_call(request, target, "chat", "/v1/messages", payload) as up:
            raw = await up.read()
            if up.status != 200:  # in Anthropic's shape, with the engine's message
                return ANTHROPIC.answer(engine_refusal(up.status, raw))
            return Response(raw, media_type="application/json")

    async def relay() -> AsyncIterator[bytes]:
        async with engine_call(request, target, "chat", "/v1/messages", payload) as up:
            if up.status != 200:
                raise engine_refusal(up.status, await up.read())
            yield b""  # connected: the answer begins
            head: bytes | None = b""  # the stream's first bytes, until its first event shows
            async for chunk in up.chunks():
                if head is not None:
                    head += chunk
                    if len(head) < len(anthropic.START) and b"\n\n" not in head:
                        continue
                    chunk, head = anthropic.opening_for(head, payload["model"]) + head, None
                yield chunk
            if head:
                yield head

    return StreamingResponse(await begun(relay(), ANTHROPIC.piece), media_type="text/event-stream")


async def _translated(
    request: Request, target: Ticket, payload: dict[str, Any], stream: bool, force: tools.Forced | None
) -> Response:
    """Onto the engine's chat completions and back; a tool_choice that forces calls (any, a
    tool) the gateway forces where the engine cannot (tools.py)."""
    chat = anthropic.chat_request(payload)
    name = payload["model"]
    if force is not None:
        constrained = tools.constrained(chat, force)
        async with engine_call(request, target, "chat", "/v1/chat/completions", constrained) as up:
            answer = tools.answer_with_calls(await up.json(), force)
        if not stream:
            return Response(orjson.dumps(anthropic.message(answer, name)), media_type="application/json")
        out = anthropic.StreamTranslator(name)
        events = [out.start(), *(out.feed(c) for c in tools.stream_chunks(answer, usage=True)), out.end()]
        return Response(b"".join(events), media_type="text/event-stream")
    if not stream:
        async with engine_call(request, target, "chat", "/v1/chat/completions", chat) as up:
            answer = await up.json()
        return Response(orjson.dumps(anthropic.message(answer, name)), media_type="application/json")

    async def translate() -> AsyncIterator[bytes]:
        out = anthropic.StreamTranslator(name)
        async for piece in translated_chat(request, target, chat, out):
            yield piece
        yield out.end()

    return StreamingResponse(await begun(translate(), ANTHROPIC.piece), media_type="text/event-stream")
