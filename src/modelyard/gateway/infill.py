"""A completion with a ``suffix`` (fill-in-the-middle, what code completion plugins send) onto
llama-server's /infill, which puts the model's own FIM tokens around the prompt and the suffix;
its answers, whole or streamed, as OpenAI's text completions. Other engines refuse it."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from modelyard.errors import InvalidRequest
from modelyard.gateway.calls import Answer, begun, engine_call
from modelyard.http_errors import OPENAI
from modelyard.runtime.admission import Ticket

FINISH = {"limit": "length"}  # llama-server's stop_type; eos and a stop word end it as "stop"
PASSED = ("temperature", "top_p", "seed", "stop", "top_k", "min_p", "presence_penalty", "frequency_penalty")


def infill_body(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's completion with a suffix as llama-server's /infill request."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest("a completion with a suffix takes one text prompt", param="prompt")
    if body.get("n", 1) != 1 or body.get("echo") or body.get("logprobs") or body.get("best_of", 1) != 1:
        raise InvalidRequest(
            "a completion with a suffix takes none of n, echo, logprobs or best_of", param="suffix"
        )
    out = {"input_prefix": prompt, "input_suffix": body["suffix"], "n_predict": body.get("max_tokens") or 16}
    out |= {k: body[k] for k in PASSED if body.get(k) is not None}
    if body.get("stream"):
        out["stream"] = True
    return out


def _completion(cid: str, name: str, text: str, finish: str | None) -> dict[str, Any]:
    return {"id": cid, "object": "text_completion", "created": int(time.time()), "model": name,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}  # fmt: skip


def _finish(event: dict[str, Any]) -> str | None:
    return FINISH.get(event.get("stop_type", ""), "stop") if event.get("stop") else None


def _usage(event: dict[str, Any]) -> dict[str, int]:
    given, made = int(event.get("tokens_evaluated") or 0), int(event.get("tokens_predicted") or 0)
    return {"prompt_tokens": given, "completion_tokens": made, "total_tokens": given + made}


async def completion(request: Request, ticket: Ticket, body: dict[str, Any], name: str) -> Response:
    """The completion of ``body`` (it has a suffix) by ``ticket``'s engine, as OpenAI answers it."""
    if not ticket.backend.fills_in_middle:
        raise InvalidRequest(
            f"{name!r} runs on {ticket.backend.name}, which does not complete before a suffix (fill-in-the-middle)",
            hint="llama.cpp serves it, for models with FIM tokens (most code models)",
            param="suffix",
        )
    asked = infill_body(body)
    cid = "cmpl-" + uuid.uuid4().hex[:24]
    if not asked.get("stream"):
        async with engine_call(request, ticket, "completions", "/infill", asked, named=False) as up:
            _check(up, name)
            answer = await up.json()
            usage = _usage(answer)
            up.exchange.usage(usage)
        out = _completion(cid, name, answer.get("content", ""), _finish({**answer, "stop": True}))
        return Response(orjson.dumps({**out, "usage": usage}), media_type="application/json")
    usage_asked = bool((body.get("stream_options") or {}).get("include_usage"))

    async def relay() -> AsyncIterator[bytes]:
        async with engine_call(request, ticket, "completions", "/infill", asked, named=False) as up:
            _check(up, name)
            events = up.events()
            first = await anext(events, None)  # an error answer raises here, before the stream
            yield b""  # the answer has begun
            last = first or {}
            if first is not None:
                yield _chunk(cid, name, first)
                async for event in events:
                    last = event
                    yield _chunk(cid, name, event)
            usage = _usage(last)
            up.exchange.usage(usage)
        if usage_asked:
            yield (
                b"data: "
                + orjson.dumps({**_completion(cid, name, "", None), "choices": [], "usage": usage})
                + b"\n\n"
            )
        yield b"data: [DONE]\n\n"

    return StreamingResponse(await begun(relay(), OPENAI.piece), media_type="text/event-stream")


def _check(up: Answer, name: str) -> None:
    """llama-server answers 501 for a model without FIM tokens: the client's to change."""
    if up.status == 501:
        raise InvalidRequest(
            f"{name!r} has no fill-in-the-middle tokens, so it cannot complete before a suffix",
            hint="use a code model that has them (most do), or leave the suffix out",
            param="suffix",
        )


def _chunk(cid: str, name: str, event: dict[str, Any]) -> bytes:
    return (
        b"data: " + orjson.dumps(_completion(cid, name, event.get("content", ""), _finish(event))) + b"\n\n"
    )
