"""The runner's HTTP app: /health, and the OpenAI routes of the task it serves."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from modelyard.runners.errors import RunnerError

Handler = Callable[[dict[str, Any], str], Awaitable[dict[str, Any] | AsyncIterator[bytes]]]


def build_app(
    name: str,
    routes: dict[str, Handler],
    info: dict[str, Any],
    stats: Callable[[], dict[str, Any]] = dict,
) -> FastAPI:
    """``routes`` maps paths (/v1/embeddings, ...) to handlers taking the JSON body and the
    served model name. Bodies are parsed by hand: the gateway has checked them already.
    /health also reports ``stats()`` (how many batches ran, ...)."""
    app = FastAPI(title=f"modelyard runner: {name}", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, **info, "stats": stats()}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "modelyard", **info}]}

    for path, handler in routes.items():
        app.add_api_route(path, _endpoint(handler, name), methods=["POST"])
    return app


def _endpoint(handler: Handler, name: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise RunnerError("the body must be a JSON object")
            result = await handler(body, name)
        except json.JSONDecodeError:
            return _error(RunnerError("the body is not valid JSON"))
        except RunnerError as e:
            return _error(e)
        if isinstance(result, dict):
            return Response(json.dumps(result), media_type="application/json")
        return StreamingResponse(
            result, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return endpoint


def _error(e: RunnerError) -> Response:
    return Response(json.dumps(e.body()), status_code=e.status, media_type="application/json")
