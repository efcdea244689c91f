"""A small HTTP/1.1 client of the modelyard server for the CLI, on a socket of its own: a command
starts in a fraction of the time an HTTP library's import takes (the standard library's
http.client, with the email parser and ssl it loads, is about 20 ms of every command here; ssl
is loaded for https:// servers only)."""

from __future__ import annotations

import io
import json
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit

from modelyard.errors import ModelyardError, ServerUnavailable

CONNECT = 10.0  # seconds to reach the server
LINE = 1 << 16  # the longest status or header line taken


class ApiError(ModelyardError):
    """An error the server answered with."""

    def __init__(self, status: int, code: str, message: str, hint: str | None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code


class Answer:
    """An answer: its status, its headers (lower-case names), and its body, read as it comes."""

    def __init__(self, status: int, reason: str, headers: dict[str, str], reader: io.BufferedReader) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self._reader = reader

    def chunks(self) -> Iterator[bytes]:
        """Its bytes as they arrive (chunked or not)."""
        reader = self._reader
        if self.status in (204, 304):
            return
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = _number(reader.readline(LINE).split(b";", 1)[0], 16)
                if size == 0:
                    while reader.readline(LINE) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                data = reader.read(size)
                if len(data) < size:
                    raise ConnectionError("the answer ended inside a chunk")
                reader.readline(LINE)
                yield data
        elif "content-length" in self.headers:
            left = _number(self.headers["content-length"].encode(), 10)
            while left > 0:
                data = reader.read1(min(left, 1 << 16))
                if not data:
                    raise ConnectionError("the answer ended early")
                left -= len(data)
                yield data
        else:  # until the server closes the connection
            while data := reader.read1(1 << 16):
                yield data

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def close(self) -> None:
        self._reader.close()

    def lines(self) -> Iterator[str]:
        """Its lines (server-sent events, a log), without their line ends."""
        rest = b""
        for data in self.chunks():
            *whole, rest = (rest + data).split(b"\n")
            for line in whole:
                yield line.decode("utf-8", errors="replace").rstrip("\r")
        if rest:
            yield rest.decode("utf-8", errors="replace").rstrip("\r")


class Client:
    """One connection per call: a CLI command makes a handful of requests, then exits."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        parts = urlsplit(self.base_url)
        self._secure = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._secure else 80)
        self._prefix = parts.path
        named = f"[{self._host}]" if ":" in self._host else self._host
        self._authority = named if parts.port is None else f"{named}:{parts.port}"

    def _connect(self, timeout: float | None) -> socket.socket:
        try:
            sock = socket.create_connection(
                (self._host, self._port), CONNECT if timeout is None else min(CONNECT, timeout)
            )
        except OSError:  # refused or unreachable
            raise ServerUnavailable(self.base_url) from None
        if self._secure:
            import ssl

            try:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self._host)
            except OSError:
                sock.close()
                raise ServerUnavailable(self.base_url) from None
        sock.settimeout(timeout)  # None: an answer that streams for as long as it likes
        return sock

    def _send(
        self,
        method: str,
        path: str,
        json_body: Any,
        params: dict[str, Any] | None,
        timeout: float | None,
        form: tuple[bytes, str] | None = None,
    ) -> tuple[socket.socket, Answer]:
        query = {k: _text(v) for k, v in (params or {}).items() if v is not None}
        target = self._prefix + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Host": self._authority, "Connection": "close", **self.headers}
        body = b""
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            body, headers["Content-Type"] = form
        if body or method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock = self._connect(timeout)
        reader = sock.makefile("rb")
        try:
            sock.sendall(head.encode("latin-1") + b"\r\n" + body)
            return sock, _answer(reader)
        except (OSError, ModelyardError) as e:
            reader.close()
            sock.close()
            if isinstance(e, OSError):  # gone before answering, or too slow
                raise self._failed(e, timeout) from None
            raise

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        wait: bool = False,
        form: tuple[bytes, str] | None = None,
    ) -> Any:
        """The JSON answer (None for none); an ApiError for an error answer. ``wait``: for as
        long as the server works on it (no read timeout). ``form``: a body and its type."""
        sock, answer = self._send(method, path, json, params, None if wait else self.timeout, form)
        try:
            raw = answer.read()
        except OSError as e:
            raise self._failed(e, self.timeout) from None
        finally:
            answer.close()
            sock.close()
        if answer.status >= 400:
            raise_for(answer.status, raw, answer.reason)
        if answer.status == 204 or not raw:
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
        sock, answer = self._send(method, path, json, params, None)
        try:
            if answer.status >= 400:
                raise_for(answer.status, answer.read(), answer.reason)
            yield answer
        finally:
            answer.close()
            sock.close()

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

    def upload(self, path: str, name: str, content: bytes, fields: dict[str, str]) -> Any:
        """POST a multipart form: ``fields``, and ``content`` as its file ``name``."""
        boundary = f"modelyard-{secrets.token_hex(12)}"
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in fields.items()]  # fmt: skip
        quoted = name.replace('"', "%22").replace("\r", "").replace("\n", "")
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n")  # fmt: skip
        body = b"".join(parts) + head.encode() + content + f"\r\n--{boundary}--\r\n".encode()
        return self.request("POST", path, form=(body, f"multipart/form-data; boundary={boundary}"), wait=True)


def _number(text: bytes, base: int) -> int:
    """A chunk's size or a Content-Length; an answer that has none is no HTTP answer."""
    try:
        return int(text.strip(), base)
    except ValueError:
        raise _not_http() from None


def _not_http() -> ModelyardError:
    return ModelyardError("the server's answer is not HTTP", hint="is MODELYARD_URL a modelyard server?")


def _answer(reader: io.BufferedReader) -> Answer:
    """The status line and headers of an answer; its body is left to read."""
    status_line = reader.readline(LINE)
    parts = status_line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        if not status_line:
            raise ConnectionError("the server closed the connection without an answer")
        raise _not_http()
    headers: dict[str, str] = {}
    while (line := reader.readline(LINE)) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(parts[1]), parts[2].strip() if len(parts) > 2 else "", headers, reader)


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
