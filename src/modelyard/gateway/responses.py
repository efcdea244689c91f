"""/v1/responses: OpenAI's Responses API on every engine that chats, translated onto its chat
completions (items.py) through the gateway's one upstream path, streamed or not; a tool_choice
that forces calls is forced as on the chat route (tools.py). Responses are stored unless asked
not to (conversations.py): previous_response_id opens a request with its chain's items, and
GET, DELETE and input_items read them, for the key that made them only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError

from modelyard.conversations import Conversations, input_items
from modelyard.errors import InvalidRequest, ModelyardError
from modelyard.gateway import items, tools
from modelyard.gateway.calls import admit, begun, count_tokens, engine_call, translated_chat, truncates
from modelyard.gateway.checks import caller_of, client_files_of, conversations_of, lower
from modelyard.gateway.fields import service_tier
from modelyard.gateway.media import inline_files
from modelyard.gateway.pages import page
from modelyard.gateway.protocol import InputTokensRequest, ResponsesRequest, documented
from modelyard.http_errors import OPENAI
from modelyard.runtime.admission import Disconnected, stays
from modelyard.runtime.queue import ClientGone
from modelyard.validation import describe

router = APIRouter(prefix="/v1", tags=["openai"])


@dataclass
class Turn:
    """One request's place in its conversation: who asks, the items it gave, whether its
    response is stored."""

    conversations: Conversations
    account: str | None
    given: list[dict[str, Any]]
    store: bool

    async def kept(self, response: dict[str, Any]) -> dict[str, Any]:
        if self.store:
            await self.conversations.keep(self.account, self.given, response)
        return response


@router.post("/responses", openapi_extra=documented(ResponsesRequest))
async def create(request: Request) -> Response:
    """OpenAI's Responses: {model, input, instructions?, tools?, tool_choice?, text?,
    reasoning?, max_output_tokens?, previous_response_id?, store?, stream?, ...}."""
    raw = await request.body()
    try:
        body = ResponsesRequest.model_validate_json(raw)
        payload = orjson.loads(raw)
        if (tier := service_tier(payload.get("service_tier"))) is not None:
            lower(request, tier)
        ticket = admit(request, body.model, "chat")
        conversations = conversations_of(request)
        caller = caller_of(request)
        turn = Turn(
            conversations, caller.account, input_items(payload["input"]), body.store and conversations.keeps
        )
        if body.background and not turn.store:
            raise InvalidRequest(
                "this server keeps no responses (MODELYARD_RESPONSES_KEEP is 0), so a background one could not be read"
            )
        payload["store"] = turn.store
        payload["truncation"] = cut = "auto" if truncates(ticket, body.truncation) else "disabled"
        earlier = []
        if body.previous_response_id is not None:
            earlier = await conversations.history(body.previous_response_id, caller.account)
        chat = items.chat_request({**payload, "input": earlier + turn.given})
        await inline_files(chat, "chat", ticket.model.category, client_files_of(request), caller)
        rid = items.new_id("resp")
        force = tools.forced(chat)
        key = payload.get("prompt_cache_key")
        session = key if isinstance(key, str) and key else None  # routes the conversation

        async def answered(disconnected: Disconnected | None = None) -> dict[str, Any]:
            """The engine's whole answer, as a chat completion (with the calls forced)."""
            sent = chat if force is None else tools.constrained(chat, force)
            async with engine_call(
                request,
                ticket,
                "chat",
                "/v1/chat/completions",
                sent,
                disconnected=disconnected,
                session=session,
                truncate=cut,
            ) as up:
                answer = await up.json()
            return answer if force is None else tools.answer_with_calls(answer, force)

        if body.background:
            queued = items.shell(rid, body.model, payload, "queued")

            async def work() -> dict[str, Any]:  # the client does not wait for it
                return items.response(await answered(stays), rid, body.model, payload)

            await conversations.in_background(caller.account, turn.given, queued, work)
            return _json(queued)
        if force is not None and body.stream:  # the calls, whole, as a stream
            out = items.StreamTranslator(rid, body.model, payload)
            chunks = tools.stream_chunks(await answered(), usage=True)
            events = [out.start(), *(out.feed(c) for c in chunks), out.end()]
            await turn.kept(out.response)
            return Response(b"".join(events), media_type="text/event-stream")
        if not body.stream:
            return _json(await turn.kept(items.response(await answered(), rid, body.model, payload)))
    except ValidationError as e:
        return OPENAI.answer(InvalidRequest(describe(e.errors())))
    except ClientGone:
        return Response(status_code=499)
    except ModelyardError as e:
        return OPENAI.answer(e)

    out = items.StreamTranslator(rid, body.model, payload)

    async def translate() -> AsyncIterator[bytes]:
        async for piece in translated_chat(request, ticket, chat, out, session, cut):
            yield piece
        end = out.end()
        await turn.kept(out.response)
        yield end

    def failed(e: ModelyardError) -> bytes:
        return out.failed("server_error", e.message)

    try:
        lines = await begun(translate(), failed)
    except ClientGone:
        return Response(status_code=499)
    except ModelyardError as e:
        return OPENAI.answer(e)
    return StreamingResponse(lines, media_type="text/event-stream")


@router.post("/responses/input_tokens", openapi_extra=documented(InputTokensRequest))
async def input_tokens(request: Request) -> Response:
    """How many tokens a Responses request would put before the model (its instructions, the
    chain of ``previous_response_id``, its input, its tools), counted by the model's engine."""
    raw = await request.body()
    try:
        body = InputTokensRequest.model_validate_json(raw)
        payload = orjson.loads(raw)
        ticket = admit(request, body.model, "chat")
        earlier = []
        if body.previous_response_id is not None:
            earlier = await conversations_of(request).history(
                body.previous_response_id, caller_of(request).account
            )
        given = input_items(payload["input"]) if body.input is not None else []
        chat = items.chat_request({**payload, "input": earlier + given})
        counted = await count_tokens(request, ticket, chat)
    except ValidationError as e:
        return OPENAI.answer(InvalidRequest(describe(e.errors())))
    except ClientGone:
        return Response(status_code=499)
    except ModelyardError as e:
        return OPENAI.answer(e)
    return _json({"object": "response.input_tokens", "input_tokens": counted})


def _json(answer: dict[str, Any]) -> Response:
    return Response(orjson.dumps(answer), media_type="application/json")


@router.get("/responses/{rid}")
async def retrieve(request: Request, rid: str) -> dict[str, Any]:
    """A stored response, as it was answered."""
    stored = await conversations_of(request).get(rid, caller_of(request).account)
    return stored.response


@router.post("/responses/{rid}/cancel")
async def cancel(request: Request, rid: str) -> dict[str, Any]:
    """Stop a background response; it is stored as cancelled."""
    return await conversations_of(request).cancel(rid, caller_of(request).account)


@router.delete("/responses/{rid}")
async def delete(request: Request, rid: str) -> dict[str, Any]:
    await conversations_of(request).delete(rid, caller_of(request).account)
    return {"id": rid, "object": "response", "deleted": True}


@router.get("/responses/{rid}/input_items")
async def input_items_of(
    request: Request,
    rid: str,
    order: Literal["asc", "desc"] = "desc",
    limit: int = Query(default=20, ge=1, le=100),
    after: str | None = None,
) -> dict[str, Any]:
    """The input items a stored response was made from (its own, not its chain's), a page at a
    time."""
    stored = await conversations_of(request).get(rid, caller_of(request).account)
    found = stored.input if order == "asc" else list(reversed(stored.input))
    return page(found, after, limit, of=f"response {rid!r}")
