"""A small HTTP client of the modelyard server for the CLI, on the standard library's
http.client: a command starts in a fraction of the time an HTTP library's import takes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPConnection, HTTPResponse
from typing import Any
from urllib.parse import urlencode, urlsplit

from modelyard.errors import ModelyardError, ServerUnavailable

CONNECT = 10.0  # seconds to reach the server


class ApiError(ModelyardError):
    """An error the server answered with."""

    def __init__(self, status: int, code: str, message: str, hint: str | None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code


class Answer:
    """A streamed answer, read as it comes."""

    def __init__(self, response: HTTPResponse) -> None:
        self.status = response.status
        self._response = response

    def lines(self) -> Iterator[str]:
        """Its lines (server-sent events, a log), without their line ends."""
        while line := self._response.readline():
            yield line.decode("utf-8", errors="replace").rstrip("\r\n")

    def chunks(self) -> Iterator[bytes]:
        """Its bytes as they arrive."""
        while chunk := self._response.read1(1 << 16):
            yield chunk


class Client:
    """One connection per call: a CLI command makes a handful of requests, then exits."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        parts = urlsplit(self.base_url)
        self._secure = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port
        self._prefix = parts.path

    def _connection(self, timeout: float | None) -> HTTPConnection:
        if self._secure:
            from http.client import HTTPSConnection

            return HTTPSConnection(self._host, self._port, timeout=timeout)
        return HTTPConnection(self._host, self._port, timeout=timeout)

    def _send(
        self, method: str, path: str, json_body: Any, params: dict[str, Any] | None, timeout: float | None
    ) -> tuple[HTTPConnection, HTTPResponse]:
        query = {k: _text(v) for k, v in (params or {}).items() if v is not None}
        target = self._prefix + path + (f"?{urlencode(query)}" if query else "")
        headers = dict(self.headers)
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        conn = self._connection(CONNECT if timeout is None else min(CONNECT, timeout))
        try:
            conn.connect()
        except OSError:  # refused or unreachable
            conn.close()
            raise ServerUnavailable(self.base_url) from None
        assert conn.sock is not None
        conn.sock.settimeout(timeout)  # None: an answer that streams for as long as it likes
        try:
            conn.request(method, target, body=body, headers=headers)
            return conn, conn.getresponse()
        except OSError as e:  # gone before answering, or too slow
            conn.close()
            raise self._failed(e, timeout) from None

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        wait: bool = False,
    ) -> Any:
        """The JSON answer (None for none); an ApiError for an error answer. ``wait``: for as
        long as the server works on it (no read timeout)."""
        conn, response = self._send(method, path, json, params, None if wait else self.timeout)
        try:
            raw = response.read()
        except OSError as e:
            raise self._failed(e, self.timeout) from None
        finally:
            response.close()
            conn.close()
        if response.status >= 400:
            raise_for(response.status, raw, response.reason)
        if response.status == 204 or not raw:
            return None
        return _json(raw)

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Iterator[Answer]:
        """An answer that streams (logs, chat, download progress), with no read timeout; an
        ApiError for an error answer."""
        conn, response = self._send(method, path, json, params, None)
        try:
            if response.status >= 400:
                raise_for(response.status, response.read(), response.reason)
            yield Answer(response)
        finally:
            response.close()
            conn.close()

    def _failed(self, e: OSError, timeout: float | None) -> ModelyardError:
        if isinstance(e, TimeoutError) and timeout is not None:
            return ModelyardError(
                f"the server at {self.base_url} did not answer within {timeout:g} s",
                hint="it may still be working on it: `modelyard ps` shows what runs",
            )
        return ServerUnavailable(self.base_url)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)


def raise_for(status: int, raw: bytes, reason: str) -> None:
    """Turn an error answer (modelyard's error shape) into an ApiError."""
    try:
        err = json.loads(raw)["error"]
        code, message, hint = err.get("code") or "error", err["message"], err.get("hint")
    except (ValueError, KeyError, TypeError):
        code, message, hint = "http_error", raw.decode("utf-8", errors="replace") or reason, None
    raise ApiError(status, code, message, hint)


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise ModelyardError(
            "the server's answer is not JSON", hint="is MODELYARD_URL a modelyard server?"
        ) from None
