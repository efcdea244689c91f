"""POST /v1/responses: OpenAI's Responses API on every engine that chats, translated onto its
chat completions (items.py) through the gateway's one upstream path, streamed or not; a
tool_choice that forces calls is forced as on the chat route (tools.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError

from modelyard.errors import InvalidRequest, ModelyardError
from modelyard.gateway import items, tools
from modelyard.gateway.calls import admit, begun, engine_call
from modelyard.gateway.checks import caller_of, client_files_of
from modelyard.gateway.media import inline_files
from modelyard.gateway.protocol import ResponsesRequest, documented
from modelyard.http_errors import OPENAI
from modelyard.runtime.queue import ClientGone
from modelyard.validation import describe

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/responses", openapi_extra=documented(ResponsesRequest))
async def create(request: Request) -> Response:
    """OpenAI's Responses: {model, input, instructions?, tools?, tool_choice?, text?,
    reasoning?, max_output_tokens?, stream?, ...}."""
    raw = await request.body()
    try:
        body = ResponsesRequest.model_validate_json(raw)
        payload = orjson.loads(raw)
        ticket = admit(request, body.model, "chat")
        chat = items.chat_request(payload)
        await inline_files(chat, "chat", ticket.model.category, client_files_of(request), caller_of(request))
        rid = items.new_id("resp")
        force = tools.forced(chat)
        if force is not None:
            constrained = tools.constrained(chat, force)
            async with engine_call(request, ticket, "chat", "/v1/chat/completions", constrained) as up:
                answer = tools.answer_with_calls(await up.json(), force)
            if not body.stream:
                return _json(items.response(answer, rid, body.model, payload))
            out = items.StreamTranslator(rid, body.model, payload)
            chunks = tools.stream_chunks(answer, usage=True)
            events = [out.start(), *(out.feed(c) for c in chunks), out.end()]
            return Response(b"".join(events), media_type="text/event-stream")
        if not body.stream:
            async with engine_call(request, ticket, "chat", "/v1/chat/completions", chat) as up:
                answer = await up.json()
            return _json(items.response(answer, rid, body.model, payload))
    except ValidationError as e:
        return OPENAI.answer(InvalidRequest(describe(e.errors())))
    except ClientGone:
        return Response(status_code=499)
    except ModelyardError as e:
        return OPENAI.answer(e)

    out = items.StreamTranslator(rid, body.model, payload)

    async def translate() -> AsyncIterator[bytes]:
        async with engine_call(request, ticket, "chat", "/v1/chat/completions", chat) as up:
            chunks = up.events()
            first = await anext(chunks, None)  # an error answer raises before the stream begins
            yield out.start()
            if first is not None:
                yield out.feed(first)
                async for chunk in chunks:
                    if piece := out.feed(chunk):
                        yield piece
        yield out.end()

    def failed(e: ModelyardError) -> bytes:
        return out.failed("server_error", e.message)

    try:
        lines = await begun(translate(), failed)
    except ClientGone:
        return Response(status_code=499)
    except ModelyardError as e:
        return OPENAI.answer(e)
    return StreamingResponse(lines, media_type="text/event-stream")


def _json(answer: dict[str, Any]) -> Response:
    return Response(orjson.dumps(answer), media_type="application/json")
