"""OpenAI completions onto TGI's own /generate and /generate_stream, for a text-generation-
inference server that has no OpenAI route (a backend whose ``dialect`` is tgi)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from modelyard.errors import EngineError, InvalidRequest
from modelyard.gateway.calls import begun, engine_call
from modelyard.http_errors import OPENAI
from modelyard.runtime.admission import Ticket

FINISH = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


def generate_body(body: dict[str, Any]) -> dict[str, Any]:
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise InvalidRequest("a TGI server takes one text prompt per request")
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest("a TGI server takes a text prompt")
    temperature = body.get("temperature")
    parameters: dict[str, Any] = {"max_new_tokens": body.get("max_tokens") or 16, "details": True}
    if temperature:
        parameters.update(do_sample=True, temperature=temperature)
    for ours, theirs in (("top_p", "top_p"), ("seed", "seed"), ("top_k", "top_k")):
        if body.get(ours) is not None:
            parameters[theirs] = body[ours]
    stop = body.get("stop")
    if stop:
        parameters["stop"] = [stop] if isinstance(stop, str) else stop
    return {"inputs": prompt, "parameters": parameters}


def _completion(
    model: str, text: str, finish: str | None, tokens: int, *, chunk: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "cmpl-" + uuid.uuid4().hex[:24],
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
    }
    if not chunk:
        out["usage"] = {"prompt_tokens": 0, "completion_tokens": tokens, "total_tokens": tokens}
    return out


async def completion(request: Request, ticket: Ticket, body: dict[str, Any], name: str) -> Response:
    generate = generate_body(body)
    if not body.get("stream"):
        async with engine_call(request, ticket, "completions", "/generate", generate, named=False) as up:
            answer = await up.json()
            details = answer.get("details") or {}
            up.exchange.usage({"completion_tokens": int(details.get("generated_tokens") or 0)})
        finish = FINISH.get(details.get("finish_reason", ""), "stop")
        out = _completion(
            name, answer.get("generated_text", ""), finish, int(details.get("generated_tokens") or 0)
        )
        return Response(orjson.dumps(out), media_type="application/json")

    async def relay() -> AsyncIterator[bytes]:
        async with engine_call(
            request, ticket, "completions", "/generate_stream", generate, named=False
        ) as up:
            if up.status != 200:
                raise EngineError(f"the TGI server answered {up.status}")
            yield b""  # connected: the stream begins
            async for line in up.response.content:
                if not line.startswith(b"data:"):
                    continue
                event = orjson.loads(line[5:].strip())
                if "error" in event:
                    raise EngineError(f"the TGI server failed: {event['error']}")
                token = event.get("token") or {}
                details = event.get("details")
                finish = FINISH.get(details.get("finish_reason", ""), "stop") if details else None
                if details:
                    up.exchange.usage({"completion_tokens": int(details.get("generated_tokens") or 0)})
                text = "" if token.get("special") else token.get("text", "")
                yield b"data: " + orjson.dumps(_completion(name, text, finish, 0, chunk=True)) + b"\n\n"
        yield b"data: [DONE]\n\n"

    return StreamingResponse(await begun(relay(), OPENAI.piece), media_type="text/event-stream")
