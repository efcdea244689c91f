"""The runner's HTTP app: /health, and the OpenAI routes of the task it serves. A bare Starlette
app: the gateway has checked the bodies, and every request saved counts when embeddings arrive
by the hundred."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from modelyard.runners.errors import RunnerError

Handler = Callable[[dict[str, Any], str], Awaitable[dict[str, Any] | AsyncIterator[bytes]]]
DUMP = orjson.OPT_SERIALIZE_NUMPY


def build_app(
    name: str,
    routes: dict[str, Handler],
    info: dict[str, Any],
    stats: Callable[[], dict[str, Any]] = dict,
) -> Starlette:
    """``routes`` maps paths (/v1/embeddings, ...) to handlers taking the JSON body and the
    served model name. /health also reports ``stats()`` (how many batches ran, ...)."""

    async def health(_request: Request) -> Response:
        return _json({"status": "ok", "model": name, **info, "stats": stats()})

    async def models(_request: Request) -> Response:
        card = {"id": name, "object": "model", "owned_by": "modelyard", **info}
        return _json({"object": "list", "data": [card]})

    table = [Route("/health", health), Route("/v1/models", models)]
    table += [Route(path, _endpoint(handler, name), methods=["POST"]) for path, handler in routes.items()]
    return Starlette(routes=table)


def _endpoint(handler: Handler, name: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                body = await _form(request)
            else:
                body = orjson.loads(await request.body())
            if not isinstance(body, dict):
                raise RunnerError("the body must be a JSON object")
            result = await handler(body, name)
        except orjson.JSONDecodeError:
            return _error(RunnerError("the body is not valid JSON"))
        except RunnerError as e:
            return _error(e)
        if isinstance(result, dict):
            return _json(result)
        return StreamingResponse(
            result, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return endpoint


async def _form(request: Request) -> dict[str, Any]:
    """A multipart form (OpenAI's /v1/images/edits) as a JSON-like body: files become data URLs,
    numbers and booleans are parsed."""
    body: dict[str, Any] = {}
    async with request.form() as form:
        for key, value in form.multi_items():
            if isinstance(value, str):
                try:
                    body[key] = orjson.loads(value) if value[:1] in "-0123456789tfn[{" else value
                except orjson.JSONDecodeError:
                    body[key] = value
            else:
                raw = await value.read()
                kind = value.content_type or "application/octet-stream"
                body[key.removesuffix("[]")] = f"data:{kind};base64,{base64.b64encode(raw).decode()}"
    return body


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=DUMP), status_code=status, media_type="application/json")


def _error(e: RunnerError) -> Response:
    return _json(e.body(), e.status)
