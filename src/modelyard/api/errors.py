"""The app's exception handlers: domain errors, invalid bodies and bugs, all answered in the one
error shape of http_errors.py."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from modelyard import errors
from modelyard.http_errors import (
    INVALID,
    ErrorBody,
    ErrorDetail,
    error_response,
    internal_body,
    invalid_body,
    response,
)
from modelyard.validation import describe

log = logging.getLogger(__name__)
CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def _openai(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.ModelyardError)
    async def _domain(request: Request, exc: errors.ModelyardError) -> Response:
        return error_response(exc, openai=_openai(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return refused(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        return response(invalid_body(describe(exc.errors(), skip=1)), 400)

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> Response:
        return internal(exc)


def refused(exc: StarletteHTTPException) -> Response:
    """What the framework itself refuses (no such route, a body it cannot parse), in the same
    shape as everything else."""
    detail = exc.detail if isinstance(exc.detail, str) else "the request was refused"
    body = ErrorBody(
        error=ErrorDetail(message=detail, type=INVALID, code=CODES.get(exc.status_code, "http_error"))
    )
    return response(body, exc.status_code)


def internal(exc: Exception) -> Response:
    """A bug: logged with its traceback, answered without it."""
    log.exception("internal error", exc_info=exc)
    return response(internal_body("modelyard hit an internal error; the server log has the details"), 500)
