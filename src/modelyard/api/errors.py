"""Domain errors -> HTTP responses. The first class in an error's MRO with a status wins."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from modelyard import errors
from modelyard.gateway import errors as gateway_errors
from modelyard.problems import describe

log = logging.getLogger(__name__)

STATUS: dict[type[errors.ModelyardError], int] = {
    errors.NotFound: 404,
    errors.QueueFull: 503,
    errors.Conflict: 409,
    errors.InvalidInput: 400,
    errors.ModelFileError: 422,
    errors.IncompatibleAdapter: 422,
    errors.Unsupported: 400,
    errors.ChatTemplateMissing: 400,
    errors.EngineUnavailable: 503,
    errors.EngineError: 502,
    errors.HubAuthRequired: 403,
    errors.HubError: 502,
}


def status_of(exc: errors.ModelyardError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def body(kind: str, message: str, hint: str | None = None) -> dict[str, object]:
    return {"error": {"type": kind, "message": message, "hint": hint}}


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.ModelyardError)
    async def _domain(request: Request, exc: errors.ModelyardError) -> JSONResponse:
        if request.url.path.startswith("/v1/"):
            return gateway_errors.from_exception(exc)
        return JSONResponse(body(type(exc).__name__, exc.message, exc.hint), status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = describe(exc.errors(), skip=1)
        if request.url.path.startswith("/v1/"):
            return gateway_errors.openai_error(problems, status=400)
        return JSONResponse(body("InvalidRequest", problems), status_code=422)

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error", exc_info=exc)
        return JSONResponse(
            body("InternalError", "modelyard hit an internal error; the server log has the details"),
            status_code=500,
        )
