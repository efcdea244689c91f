"""Forward an OpenAI request to an engine instance and its answer back, streamed or not."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from fastapi.responses import JSONResponse, Response, StreamingResponse

log = logging.getLogger(__name__)


def _sse_error(message: str) -> bytes:
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": "engine_error"}}
    return f"data: {json.dumps(body)}\n\n".encode()


async def forward(
    http: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    *,
    stream: bool,
    done: Callable[[], None],
) -> Response:
    """POST ``body`` to ``url``. ``done`` is called exactly once, when the answer is finished (or
    failed, or the client went away): it frees the queue slot."""
    try:
        request = http.build_request("POST", url, json=body)
        upstream = await http.send(request, stream=True)
    except httpx.HTTPError as e:
        done()
        log.warning("engine at %s unreachable: %s", url, e)
        return _engine_down(f"the engine did not answer: {e.__class__.__name__}")
    if not stream or upstream.status_code != 200:
        try:
            raw = await upstream.aread()
        except httpx.HTTPError as e:
            return _engine_down(f"the engine failed while answering: {e.__class__.__name__}")
        finally:
            await upstream.aclose()
            done()
        return Response(raw, status_code=upstream.status_code, media_type="application/json")

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError as e:
            # The engine died mid-stream: end the client's stream with an error event.
            log.warning("engine stream from %s broke: %s", url, e)
            yield _sse_error(f"the engine stopped while answering ({e.__class__.__name__}); it is restarting")
        finally:
            await upstream.aclose()
            done()

    return StreamingResponse(
        relay(),
        status_code=200,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _engine_down(message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "server_error", "param": None, "code": "engine_error"}},
        status_code=502,
    )
