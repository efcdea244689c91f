"""How an error looks over HTTP, everywhere: /api, /v1, the gateway's proxy and the runner.

One table maps each domain error (the first class of its MRO that is listed) to an HTTP status
and an OpenAI error type; the code is the error's class in snake_case (``ModelNotFound`` ->
``model_not_found``). One body carries it:

    {"error": {"message": ..., "type": ..., "code": ..., "param": ..., "hint": ...}}

OpenAI's clients read ``message``, ``type`` and ``code``; modelyard's CLI and web UI show the
``hint`` too. Anthropic's and Ollama's APIs answer in their own shapes: each API is a ``Dialect``
(OPENAI, MANAGEMENT, ANTHROPIC, OLLAMA), the one thing that answers its errors, whole or as the
end of a stream. The domain never imports this module: only the HTTP layers do. It needs only
pydantic, orjson and starlette, so the runner (in a managed environment) uses it too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from pydantic import BaseModel, Field
from starlette.responses import Response

from modelyard import errors

INVALID = "invalid_request_error"
SERVER = "server_error"
CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}

# class -> (HTTP status, OpenAI error type)
TABLE: dict[type[errors.ModelyardError], tuple[int, str]] = {
    errors.NotFound: (404, INVALID),
    errors.RequestTooLarge: (413, INVALID),
    errors.UnsupportedMediaType: (415, INVALID),
    errors.Unauthenticated: (401, "authentication_error"),
    errors.Forbidden: (403, "permission_error"),
    errors.QueueFull: (429, "rate_limit_error"),
    errors.QueueTimeout: (429, "rate_limit_error"),
    errors.QuotaExceeded: (429, "rate_limit_error"),
    errors.Conflict: (409, INVALID),
    errors.InvalidInput: (400, INVALID),
    errors.ModelFileError: (422, INVALID),
    errors.IncompatibleAdapter: (422, INVALID),
    errors.Unsupported: (400, INVALID),
    errors.ChatTemplateMissing: (400, INVALID),
    errors.EngineUnavailable: (503, SERVER),
    errors.EngineError: (502, SERVER),
    errors.HubAuthRequired: (403, "permission_error"),
    errors.HubError: (502, SERVER),
    errors.ServerUnavailable: (503, SERVER),
}
INTERNAL = (500, SERVER)
# how engines say a prompt is longer than their context (llama-server, vLLM, the runner)
OVER_CONTEXT = re.compile(r"context (?:size|length)|the context is", re.IGNORECASE)


class ErrorDetail(BaseModel):
    message: str = Field(description="what went wrong")
    type: str = Field(description="OpenAI's error type: invalid_request_error, server_error, ...")
    code: str = Field(description="the error's kind: model_not_found, queue_full, malformed_file, ...")
    param: str | None = Field(None, description="the request field at fault, when there is one")
    hint: str | None = Field(None, description="what to do about it")


class ErrorBody(BaseModel):
    """Every error answer of modelyard's HTTP surfaces."""

    error: ErrorDetail


def _clean(text: str | None) -> str | None:
    """Text that JSON can carry: a lone surrogate (a client's bad Unicode quoted back) escaped."""
    if text is None:
        return None
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def status_of(exc: errors.ModelyardError) -> tuple[int, str]:
    """(HTTP status, OpenAI type) of a domain error."""
    return next((TABLE[c] for c in type(exc).__mro__ if c in TABLE), INTERNAL)


def body_of(
    exc: errors.ModelyardError, *, hint_in_message: bool = False, with_log: bool = False
) -> tuple[int, ErrorBody]:
    """The status and body of a domain error. ``hint_in_message`` puts the hint into the message
    too, for OpenAI clients, which show the message alone; ``with_log`` adds the end of an
    engine's log to the hint (the management API's answers: admins only)."""
    status, kind = status_of(exc)
    message = str(exc) if hint_in_message else exc.message
    hint = exc.hint
    engine_log = getattr(exc, "log", None)
    if with_log and engine_log:
        hint = f"its log says:\n{engine_log}"
    detail = ErrorDetail(
        message=_clean(message) or "",
        type=kind,
        code=_snake(type(exc).__name__),
        param=_clean(getattr(exc, "param", None)),
        hint=_clean(hint),
    )
    return status, ErrorBody(error=detail)


def internal_error(message: str) -> Response:
    """The answer to a bug (500), which says where its details are, never what they are."""
    return _response(ErrorBody(error=ErrorDetail(message=message, type=SERVER, code="internal_error")), 500)


def retry_after(exc: errors.ModelyardError) -> int | None:
    """Seconds a client should wait before trying again, for errors that pass (a full queue)."""
    value = getattr(exc, "retry_after", None)
    return int(value) if value is not None else None


def _response(body: ErrorBody, status: int, *, retry: int | None = None) -> Response:
    headers = {"Retry-After": str(retry)} if retry is not None else None
    return Response(
        orjson.dumps(body.model_dump()), status_code=status, media_type="application/json", headers=headers
    )


def _ours(exc: errors.ModelyardError, *, openai: bool) -> Response:
    """modelyard's own shape: on the OpenAI surfaces (/v1, the runner) the hint is part of the
    message as well; elsewhere (the management API, admins only) an engine's log is too."""
    status, body = body_of(exc, hint_in_message=openai, with_log=not openai)
    return _response(body, status, retry=retry_after(exc))


def _ours_piece(exc: errors.ModelyardError) -> bytes:
    _status, body = body_of(exc, hint_in_message=True)
    return b"data: " + orjson.dumps(body.model_dump()) + b"\n\n"


def _ours_refused(status: int, message: str) -> Response:
    code = CODES.get(status, "http_error")
    return _response(ErrorBody(error=ErrorDetail(message=message, type=INVALID, code=code)), status)


# Anthropic's error types by status (its Messages API: /v1/messages)
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 409: "invalid_request_error", 413: "request_too_large",
                   415: "invalid_request_error", 429: "rate_limit_error", 503: "overloaded_error"}  # fmt: skip


def _anthropic_body(status: int, message: str | None) -> bytes:
    kind = ANTHROPIC_TYPES.get(status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def _anthropic(exc: errors.ModelyardError) -> Response:
    status = status_of(exc)[0]
    body = _anthropic_body(status, _clean(str(exc)))
    return Response(body, status_code=status, media_type="application/json", headers=_retry(exc))


def _anthropic_piece(exc: errors.ModelyardError) -> bytes:
    return b"event: error\ndata: " + _anthropic_body(status_of(exc)[0], _clean(str(exc))) + b"\n\n"


def _anthropic_refused(status: int, message: str) -> Response:
    return Response(_anthropic_body(status, message), status_code=status, media_type="application/json")


def _ollama(exc: errors.ModelyardError) -> Response:
    return _ollama_refused(status_of(exc)[0], _clean(str(exc)) or "", headers=_retry(exc))


def _ollama_piece(exc: errors.ModelyardError) -> bytes:
    return orjson.dumps({"error": _clean(str(exc))}) + b"\n"


def _ollama_refused(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _retry(exc: errors.ModelyardError) -> dict[str, str] | None:
    retry = retry_after(exc)
    return {"Retry-After": str(retry)} if retry is not None else None


@dataclass(frozen=True)
class Dialect:
    """How one API says an error, wherever it answers one: as a whole answer (``answer``), as the
    last piece of a stream that already began (``piece``), and for what the framework itself
    refuses (``refused``: no such route, a wrong method)."""

    answer: Callable[[errors.ModelyardError], Response]
    piece: Callable[[errors.ModelyardError], bytes]
    refused: Callable[[int, str], Response]


OPENAI = Dialect(functools.partial(_ours, openai=True), _ours_piece, _ours_refused)  # /v1, the runner
MANAGEMENT = Dialect(functools.partial(_ours, openai=False), _ours_piece, _ours_refused)  # /api
ANTHROPIC = Dialect(_anthropic, _anthropic_piece, _anthropic_refused)  # /v1/messages
OLLAMA = Dialect(_ollama, _ollama_piece, _ollama_refused)  # the Ollama listener


def dialect_of(path: str) -> Dialect:
    """The dialect of modelyard's own listener at ``path`` (the Ollama listener speaks OLLAMA)."""
    if path == "/v1/messages":  # Anthropic's clients read its shape
        return ANTHROPIC
    return OPENAI if path.startswith("/v1/") else MANAGEMENT


def engine_refusal(status: int, raw: bytes) -> errors.ModelyardError:
    """An engine's error answer (llama-server's, vLLM's, another server's shape) as a domain
    error with the engine's message: what it refused as the client's fault is a bad request,
    anything else is the engine's failure (502)."""
    message, param = _engine_message(raw)
    if status == 413:
        return errors.RequestTooLarge(f"the engine refused the request as too large: {message}")
    if 400 <= status < 500 and status not in (401, 403, 408, 429):
        refused = errors.InvalidRequest(f"the engine refused the request: {message}", param=param)
        if OVER_CONTEXT.search(message):
            refused.hint = (
                "shorten it, load the model with a larger n_ctx, or turn truncation on (its setting)"
            )
        return refused
    return errors.EngineError(f"the engine answered {status}: {message}")


def is_ours(raw: bytes) -> bool:
    """Whether an error body is in modelyard's shape already (the runner answers in it)."""
    try:
        error = orjson.loads(raw).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return False
    return isinstance(error, dict) and {"message", "type", "code", "hint"} <= error.keys()


def _engine_message(raw: bytes) -> tuple[str, str | None]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            param = error.get("param")
            return error["message"][:2000], param if isinstance(param, str) else None
        for key in ("message", "detail"):
            if isinstance(body.get(key), str):
                return body[key][:2000], None
        if isinstance(error, str):
            return error[:2000], None
    text = raw[:500].decode(errors="replace").strip()
    return text or "no message", None
