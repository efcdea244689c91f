"""model-compose's http-client components: a request to a server that already runs (Ollama,
TGI, vLLM, any HTTP API), its ``body``, ``headers`` and query ``params`` made from the job's
input, its answer read as ``${response...}``: JSON, a stream of JSON objects
(``stream_format: json``: NDJSON lines or server-sent events, as a list), or text. The request
itself is made by the server (api/compose.py); this module shapes it and reads the answer."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelyard.compose import expressions
from modelyard.compose.names import Id
from modelyard.errors import InvalidInput


class HttpClientComponent(BaseModel):
    """``component:`` of ``type: http-client``."""

    model_config = ConfigDict(extra="forbid")

    id: Id | None = None
    type: Literal["http-client"]
    endpoint: str | None = Field(None, description="the whole URL")
    base_url: str | None = Field(None, description="or a base URL, with path")
    path: str | None = None
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict, description="the URL's query")
    body: Any = None
    stream_format: Literal["json", "text"] | None = Field(
        None, description="json: the answer is a stream of JSON objects, read as a list"
    )
    output: Any = Field(None, description="what a run gives, from ${response...}; absent: the whole answer")

    @model_validator(mode="after")
    def _readable(self) -> HttpClientComponent:
        url = urlsplit(self.url())
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError("endpoint: an http(s) URL, or base_url and path")
        expressions.readable({f: getattr(self, f) for f in ("headers", "params", "body", "output")})
        return self

    def name(self) -> str:
        return self.id or urlsplit(self.url()).netloc

    def url(self) -> str:
        if self.endpoint:
            return self.endpoint
        return (self.base_url or "").rstrip("/") + "/" + (self.path or "").lstrip("/")

    def request(self, given: Mapping[str, Any]) -> HttpRequest:
        """The request a run with the input ``given`` makes."""
        scope = {"input": dict(given), "env": os.environ}
        headers = {
            k: expressions.converted(v, "text", k) for k, v in expressions.render(self.headers, scope).items()
        }
        params = {
            k: expressions.converted(v, "text", k) for k, v in expressions.render(self.params, scope).items()
        }
        body = expressions.render(self.body, scope) if self.body is not None else None
        return HttpRequest(self.method, self.url(), headers, params, body)

    def response(self, status: int, kind: str, raw: bytes) -> Any:
        """The answer as ``${response}`` reads it; InvalidInput for an error status."""
        text = raw.decode("utf-8", errors="replace")
        if status >= 400:
            raise InvalidInput(f"{self.url()} answered {status}: {text[:300]}")
        if self.stream_format == "json":
            return [event for line in text.splitlines() if (event := _event(line)) is not None]
        if self.stream_format == "text" or "json" not in kind:
            return text
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    def output_of(self, response: Any, given: Mapping[str, Any]) -> Any:
        if self.output is None:
            return response
        return expressions.render(
            self.output, {"response": response, "input": dict(given), "env": os.environ}
        )


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str]
    body: Any


def _event(line: str) -> Any:
    """One JSON object of a stream: an NDJSON line, or a server-sent event's data."""
    line = line.strip()
    if line.startswith("data:"):
        line = line[5:].strip()
    if not line or line == "[DONE]" or line.startswith((":", "event:", "id:")):
        return None
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None
