"""The guard every HTTP request passes before a route (a bare ASGI middleware: it is on the
gateway's hot path).

1. On a loopback address, only loopback Host names are answered (DNS rebinding).
2. A state-changing request from a web page must come from the server's own origin, or one
   listed in MODELYARD_CORS_ORIGINS (cross-site requests).
3. A server on a network address that has no key (the last one was removed while it ran)
   answers /api, /v1 and /metrics from this machine only, until a key exists again: "no key,
   no network" at every moment, not only at start (--insecure aside).
4. Once any API key exists, /api, /v1 and /metrics need one (``Authorization: Bearer KEY``,
   or ``X-Api-Key``); /api and /metrics take admin keys only. /api/health, the web UI's files and the API docs
   stay open. The caller goes to the route as ``request.state.caller``.
5. A body must be JSON (multipart for images and audio sent as files, and for /v1/files) and no
   larger than MODELYARD_MAX_BODY (a file for /v1/files: MODELYARD_MAX_FILE).

Refusals answer in the one error shape (http_errors.py).
"""

from __future__ import annotations

from dataclasses import replace

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard.access.keys import OPEN, Caller, Keys, tier_of
from modelyard.access.network import host_name, is_loopback
from modelyard.config import Settings
from modelyard.errors import (
    InvalidRequest,
    ModelyardError,
    RequestRefused,
    RequestTooLarge,
    ScopeDenied,
    Unauthenticated,
    UnsupportedMediaType,
)
from modelyard.http_errors import OLLAMA, dialect_of

PUBLIC = frozenset({"/api/health"})
OLLAMA_PUBLIC = frozenset({"/api/version"})
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
MULTIPART = frozenset(
    {
        "/v1/images/edits",
        "/v1/images/captions",
        "/v1/images/upscale",
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
        "/v1/files",
    }
)
UPLOADS = "/v1/files"  # its bodies are held to max_file, not max_body


def _protected(path: str, public: frozenset[str] = PUBLIC) -> bool:
    return (path.startswith(("/api/", "/v1/")) or path in ("/api", "/v1", "/metrics")) and path not in public


def _from_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    return client is not None and is_loopback(str(client[0]))


def secret_of(headers: Headers) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None
    return headers.get("x-api-key")


class Guard:
    """``ollama``: on the Ollama listener /api is the inference API (any key), and refusals are
    in Ollama's shape."""

    def __init__(self, app: ASGIApp, *, settings: Settings, keys: Keys, ollama: bool = False) -> None:
        self.app = app
        self.keys = keys
        self.ollama = ollama
        self.host = settings.host
        self.loopback = is_loopback(settings.host)
        self.insecure = settings.insecure
        self.hosts = frozenset(h.lower() for h in settings.allowed_hosts)
        self.origins = frozenset(o.rstrip("/") for o in settings.cors_origins)
        self.max_body = settings.max_body
        self.max_file = settings.max_file

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            receive = self._admit(scope, receive)
        except ModelyardError as e:
            response = (OLLAMA if self.ollama else dialect_of(scope["path"])).answer(e)
            if isinstance(e, Unauthenticated):
                response.headers["WWW-Authenticate"] = "Bearer"
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _admit(self, scope: Scope, receive: Receive) -> Receive:
        headers = Headers(scope=scope)
        path, method = scope["path"], scope["method"]
        host = headers.get("host")
        if self.loopback and host and not self._ours(host_name(host)):
            raise RequestRefused(
                f"the Host {host!r} is not this server",
                hint="on a loopback address modelyard answers localhost, 127.0.0.1, [::1] and "
                "MODELYARD_ALLOWED_HOSTS only (a reverse proxy's name goes there)",
            )
        origin = headers.get("origin")
        if origin is not None and method not in SAFE:
            own = {f"http://{host}", f"https://{host}"} if host else set()
            if origin not in own and origin.rstrip("/") not in self.origins:
                raise RequestRefused(
                    f"a request from the web page at {origin} was refused",
                    hint="modelyard takes changes from its own pages only; list other origins in "
                    "MODELYARD_CORS_ORIGINS",
                )
        caller: Caller = OPEN
        protected = _protected(path, OLLAMA_PUBLIC if self.ollama else PUBLIC)
        if protected and not self.keys.required():
            if not self.loopback and not self.insecure and not _from_loopback(scope):
                raise RequestRefused(
                    f"this server listens on {self.host} and has no API key: it answers this machine only",
                    hint="create a key on the server (`modelyard keys create admin --scope admin`), then send it",
                )
        elif protected:
            caller = self.keys.authenticate(secret_of(headers))
            if path.startswith(("/api", "/metrics")) and not caller.admin and not self.ollama:
                raise ScopeDenied(
                    f"the key {caller.name!r} is an inference key: it reaches /v1 only",
                    hint="use an admin key for /api and the web UI",
                )
        if (asked := headers.get("x-priority")) is not None:  # a request may lower its own tier
            caller = replace(caller, asked=tier_of(asked))
        scope.setdefault("state", {})["caller"] = caller
        if method in SAFE:
            return receive
        return self._body(path, headers, receive)

    def _ours(self, name: str) -> bool:
        return is_loopback(name) or name.lower() in self.hosts

    def _body(self, path: str, headers: Headers, receive: Receive) -> Receive:
        length = headers.get("content-length")
        try:
            size = int(length) if length is not None else None
        except ValueError:
            raise InvalidRequest("the Content-Length header is not a number") from None
        limit = self.max_file + (64 << 10) if path == UPLOADS else self.max_body  # the form's own fields
        if size is not None and size > limit:
            raise self._too_large(size, path)
        if not size and "transfer-encoding" not in headers:
            return receive  # no body
        kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind != "application/json" and not (kind == "multipart/form-data" and path in MULTIPART):
            raise UnsupportedMediaType(
                f"the body is {kind or 'untyped'}: send JSON (Content-Type: application/json)"
                + (", or a multipart form" if path in MULTIPART else "")
            )
        if size is not None:
            return receive  # the server reads no more than Content-Length says
        counted = 0

        async def counting() -> Message:  # a chunked body: stop it at the limit as it comes
            nonlocal counted
            message = await receive()
            counted += len(message.get("body", b""))
            if counted > limit:
                raise self._too_large(counted, path)
            return message

        return counting

    def _too_large(self, size: int, path: str) -> RequestTooLarge:
        if path == UPLOADS:
            return RequestTooLarge(
                f"the upload has {size} bytes or more; this server takes files of {self.max_file} at most",
                hint="MODELYARD_MAX_FILE sets the limit; split a larger batch into several files",
            )
        return RequestTooLarge(
            f"the body has {size} bytes or more; this server takes {self.max_body} at most",
            hint="MODELYARD_MAX_BODY sets the limit",
        )
