"""The runner's HTTP app: /health, and the OpenAI routes of the task it serves. A bare Starlette
app, and every request saved counts when embeddings arrive by the hundred. Each route's body is
checked by its pydantic model (requests.py); errors answer in modelyard's one error shape."""

from __future__ import annotations

import base64
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from modelyard.errors import InvalidRequest, ModelyardError, Unauthenticated
from modelyard.http_errors import OPENAI, internal_error
from modelyard.tracing import Tracing
from modelyard.validation import describe, first_field

log = logging.getLogger(__name__)
# a typed answer (completions.py), a JSON object, a stream of events, or a Response (text, subtitles)
Answer = BaseModel | dict[str, Any] | AsyncIterator[bytes] | Response
DUMP = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class Endpoint:
    """One route: its body model, and the handler that takes the parsed body and the served name."""

    body: type[BaseModel]
    handler: Callable[[Any, str], Awaitable[Answer]]


def build_app(
    name: str,
    routes: dict[str, Endpoint],
    info: dict[str, Any],
    stats: Callable[[], dict[str, Any]] = dict,
    key: str | None = None,
    tracing: Tracing | None = None,
) -> Starlette:
    """``routes`` maps paths (/v1/embeddings, ...) to endpoints. /health also reports
    ``stats()`` (how many batches ran, ...). With ``key``, every route but /health wants it
    (``Authorization: Bearer KEY``): only the gateway has it. With ``tracing``, a request
    the gateway traced gets a span of its own under the gateway's."""

    async def health(_request: Request) -> Response:
        return _json({"status": "ok", "model": name, **info, "stats": stats()})

    async def models(_request: Request) -> Response:
        card = {"id": name, "object": "model", "owned_by": "modelyard", **info}
        return _json({"object": "list", "data": [card]})

    wanted = f"Bearer {key}" if key else None

    def keyed(serve: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        if wanted is None:
            return serve

        async def checked(request: Request) -> Response:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), wanted.encode()):
                return OPENAI.answer(Unauthenticated("this engine answers the modelyard gateway only"))
            return await serve(request)

        return checked

    table = [Route("/health", health), Route("/v1/models", keyed(models))]
    table += [Route(path, keyed(_route(e, name, tracing)), methods=["POST"]) for path, e in routes.items()]
    return Starlette(routes=table)


def refusal(e: ValidationError) -> Response:
    """A body that does not validate: the first problem names its field."""
    message = describe(e.errors(), extra="not supported by this engine")
    return OPENAI.answer(InvalidRequest(message, param=first_field(e.errors())))


def _route(
    endpoint: Endpoint, name: str, tracing: Tracing | None
) -> Callable[[Request], Awaitable[Response]]:
    async def traced(request: Request) -> Response:
        """The answer, in a span under the gateway's when the request carries its traceparent
        (and the runner traces): from the body's arrival to the answer's last byte."""
        if tracing is None or not tracing.wants(request.headers):  # only under the gateway's
            return await serve(request)
        span = tracing.begin(f"runner {request.url.path}", request.headers, {"modelyard.model": name})
        if span is None:
            return await serve(request)
        try:
            response = await serve(request)
        except BaseException:
            span.end()
            raise
        span.set_attribute("http.response.status_code", response.status_code)
        if not isinstance(response, StreamingResponse):
            span.end()
            return response
        body = response.body_iterator

        async def streamed() -> AsyncIterator[Any]:
            try:
                async for chunk in body:
                    yield chunk
            finally:
                span.end()

        response.body_iterator = streamed()
        return response

    async def serve(request: Request) -> Response:
        try:
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                body = endpoint.body.model_validate(await _form(request))
            else:
                body = endpoint.body.model_validate_json(await request.body())
            result = await endpoint.handler(body, name)
        except ValidationError as e:
            return refusal(e)
        except ModelyardError as e:
            return OPENAI.answer(e)
        except Exception:  # a bug: the engine stays up, the client hears it
            log.exception("request failed")
            return internal_error("the engine hit an internal error; its log has the details")
        if isinstance(result, dict):
            return _json(result)
        if isinstance(result, BaseModel):  # a typed answer: the fields it set
            return Response(result.model_dump_json(exclude_unset=True), media_type="application/json")
        if isinstance(result, Response):
            return result
        return StreamingResponse(
            result, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return traced


async def _form(request: Request) -> dict[str, Any]:
    """A multipart form (OpenAI's /v1/images/edits, /v1/audio/transcriptions) as a JSON-like
    body: files become data URLs, a field named ``name[]`` is a list; values stay text, which
    the body's model reads as its fields' types (a prompt "1984" stays a prompt)."""
    body: dict[str, Any] = {}
    async with request.form() as form:
        for key, value in form.multi_items():
            if isinstance(value, str):
                if key.endswith("[]"):
                    body.setdefault(key.removesuffix("[]"), []).append(value)
                else:
                    body[key] = value
            else:
                raw = await value.read()
                kind = value.content_type or "application/octet-stream"
                body[key.removesuffix("[]")] = f"data:{kind};base64,{base64.b64encode(raw).decode()}"
    return body


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=DUMP), status_code=status, media_type="application/json")
