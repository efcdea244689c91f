"""The app's exception handlers: domain errors, invalid bodies and bugs, all answered in the one
error shape of http_errors.py."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from modelyard import errors
from modelyard.http_errors import error_response, internal_body, invalid_body, response
from modelyard.validation import describe

log = logging.getLogger(__name__)


def _openai(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.ModelyardError)
    async def _domain(request: Request, exc: errors.ModelyardError) -> Response:
        return error_response(exc, openai=_openai(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        return response(invalid_body(describe(exc.errors(), skip=1)), 400)

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> Response:
        log.exception("internal error", exc_info=exc)
        return response(internal_body("modelyard hit an internal error; the server log has the details"), 500)
