"""modelyard errors in OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from modelyard import errors

# class -> (status, type, code); the first class in an error's MRO that is listed wins.
SHAPES: dict[type[errors.ModelyardError], tuple[int, str, str]] = {
    errors.ModelNotFound: (404, "invalid_request_error", "model_not_found"),
    errors.AdapterNotFound: (404, "invalid_request_error", "adapter_not_found"),
    errors.ModelNotLoaded: (409, "invalid_request_error", "model_not_loaded"),
    errors.LoadRefused: (409, "invalid_request_error", "load_refused"),
    errors.WontFit: (409, "invalid_request_error", "insufficient_memory"),
    errors.QueueFull: (503, "server_error", "queue_full"),
    errors.ChatTemplateMissing: (400, "invalid_request_error", "chat_template_missing"),
    errors.Unsupported: (400, "invalid_request_error", "unsupported"),
    errors.EngineUnavailable: (503, "server_error", "engine_unavailable"),
    errors.EngineError: (502, "server_error", "engine_error"),
    errors.InvalidInput: (400, "invalid_request_error", "invalid_request"),
    errors.NotFound: (404, "invalid_request_error", "not_found"),
    errors.Conflict: (409, "invalid_request_error", "conflict"),
}


def openai_error(
    message: str, *, status: int = 400, kind: str = "invalid_request_error", code: str | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status
    )


def from_exception(exc: errors.ModelyardError) -> JSONResponse:
    status, kind, code = next(
        (SHAPES[c] for c in type(exc).__mro__ if c in SHAPES), (500, "server_error", "internal_error")
    )
    response = openai_error(str(exc), status=status, kind=kind, code=code)
    if isinstance(exc, errors.QueueFull):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response
