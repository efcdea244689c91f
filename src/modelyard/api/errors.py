"""The app's exception handlers: domain errors, invalid bodies and bugs, all answered in the one
error shape of http_errors.py."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from modelyard import errors
from modelyard.http_errors import dialect_of, internal_error
from modelyard.validation import describe

log = logging.getLogger(__name__)


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.ModelyardError)
    async def _domain(request: Request, exc: errors.ModelyardError) -> Response:
        return dialect_of(request.url.path).answer(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return refused(request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return dialect_of(request.url.path).answer(errors.InvalidRequest(describe(exc.errors(), skip=1)))

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> Response:
        return internal(exc)


def refused(path: str, exc: StarletteHTTPException) -> Response:
    """What the framework itself refuses (no such route, a body it cannot parse), in the shape of
    everything else at ``path``."""
    detail = exc.detail if isinstance(exc.detail, str) else "the request was refused"
    return dialect_of(path).refused(exc.status_code, detail)


def internal(exc: Exception) -> Response:
    """A bug: logged with its traceback, answered without it."""
    log.exception("internal error", exc_info=exc)
    return internal_error("modelyard hit an internal error; the server log has the details")
