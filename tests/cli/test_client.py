"""The CLI's HTTP client (HTTP/1.1 on a socket of its own): answers with a length, chunked or
ending with the connection; what a user sees when the server is away, slow, or says no."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modelyard.cli.client import ApiError, Client
from modelyard.errors import ModelyardError, ServerUnavailable


class Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/refused"):
            body = {"error": {"message": "no such model", "code": "model_not_found", "hint": "see ls"}}
            self._send(404, json.dumps(body).encode())
        elif self.path.startswith("/text"):
            self._send(200, b"<html>a proxy's page</html>")
        elif self.path.startswith("/events"):
            self._send(200, b"data: 1\n\ndata: 2\n\n")
        elif self.path.startswith("/chunked"):  # as uvicorn streams: a line cut across chunks
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"data: 1\n\nda", b"ta: 2\n", b"\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path.startswith("/until-closed"):  # no length: the body ends with the connection
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b'{"whole": true}')
            self.close_connection = True
        else:
            self._send(200, json.dumps({"query": self.path}).encode())

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_answers_errors_and_streams(url: str) -> None:
    api = Client(url)
    assert api.get("/q", params={"follow": True, "lines": 5, "none": None}) == {
        "query": "/q?follow=true&lines=5"
    }
    with pytest.raises(ApiError) as refused:
        api.get("/refused")
    assert (refused.value.status, refused.value.code) == (404, "model_not_found")
    assert (refused.value.message, refused.value.hint) == ("no such model", "see ls")
    with pytest.raises(ModelyardError, match="not JSON"):
        api.get("/text")
    with api.stream("GET", "/events") as answer:
        assert [line for line in answer.lines() if line] == ["data: 1", "data: 2"]
    with api.stream("GET", "/chunked") as answer:
        assert [line for line in answer.lines() if line] == ["data: 1", "data: 2"]
    assert api.get("/until-closed") == {"whole": True}


def test_a_server_away_or_silent_is_said_so() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(ServerUnavailable):
        Client(f"http://127.0.0.1:{port}").get("/x")
    with socket.socket() as silent:  # takes the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(ModelyardError, match=r"did not answer within 0\.3 s"):
            Client(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3).get("/x")


def test_an_answer_that_is_not_http_is_said_so() -> None:
    answers = [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n",  # no chunk size
        b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n{}",
    ]
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer() -> None:
            for raw in answers:
                conn, _ = server.accept()
                with conn:
                    conn.recv(1 << 16)
                    conn.sendall(raw)

        threading.Thread(target=answer, daemon=True).start()
        api = Client(f"http://127.0.0.1:{server.getsockname()[1]}")
        for _ in answers:
            with pytest.raises(ModelyardError, match="the server's answer is not HTTP"):
                api.get("/x")
