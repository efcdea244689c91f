"""What the fuzz tests (and bench/fuzz.py, with many more cases) feed modelyard: damaged GGUF and
safetensors files, and arbitrary bodies for every route of /api and /v1, sent through the whole
app (guard, routes, error handlers). The invariants: a typed error or a result, never a 500, a
hang or runaway memory."""

from __future__ import annotations

import contextlib
import functools
import json
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import strategies as st
from starlette.testclient import TestClient

import builders as b
from modelyard.api.app import create_app
from modelyard.config import Settings
from modelyard.errors import ModelFileError

# -- damaged model files -------------------------------------------------------------------------


@functools.cache
def sample(kind: str) -> bytes:
    """A valid file to damage (kept out of the tests' arguments, so reports stay short)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if kind == "gguf":
            (path,) = b.write_llama_gguf(root / "tiny.gguf", n_layer=1)
        elif kind == "safetensors":
            path = b.write_safetensors(root / "t.safetensors", {"a.weight": (4, 4), "b.bias": (4,)})
        elif kind == "pth":  # an ESRGAN's names, as torch.save writes them
            import torch

            path = root / "t.pth"
            torch.save(
                {
                    "model.0.weight": torch.zeros(4, 3, 3, 3),
                    "model.1.sub.0.RDB1.conv1.0.weight": torch.zeros(2),
                },
                path,
            )
        elif kind == "onnx":
            path = b.write_onnx(root / "t.onnx")
        else:  # a CTranslate2 model.bin
            path = b.write_ctranslate2_bin(root / "model.bin")
        return path.read_bytes()


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        buf[pos % len(buf)] = value
    return bytes(buf[:cut] if cut is not None else buf)


edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=12)
cuts = st.one_of(st.none(), st.integers(0, 1 << 20))


def survives(reader: Callable[[Path], Any], path: Path) -> None:
    """``reader`` gives a result or a ModelFileError, within 2 s and 256 MiB."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with contextlib.suppress(ModelFileError):
        reader(path)
    assert time.perf_counter() - start < 2.0
    # never allocates unbounded memory (ru_maxrss is in KiB on Linux)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 * 1024


# -- request bodies ------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "x", "/", "..", "../../etc/passwd", "a\u0000b", "x" * 300, "chatml", "-1"])
)
values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=16,
)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # with {params}
    fields: tuple[str, ...]  # its JSON body's fields (none: no body)


# Routes left out: they would change who may call (keys), or stream until the client leaves.
LEFT_OUT = {("POST", "/api/keys")}
STREAMS = ("/events", "/stream", "/logs")


def endpoints(app: Any) -> list[Endpoint]:
    """The routes of /api and /v1 from the app's OpenAPI schema, with their bodies' fields."""
    schema = app.openapi()
    found = []
    for path, operations in schema["paths"].items():
        if not path.startswith(("/api", "/v1")) or path.endswith(STREAMS):
            continue
        for method, op in operations.items():
            if (method.upper(), path) in LEFT_OUT:
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" in body:
                body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
            found.append(Endpoint(method.upper(), path, tuple(body.get("properties", {}))))
    return found


def requests(routes: list[Endpoint]) -> st.SearchStrategy[tuple[Endpoint, str, bytes]]:
    """(route, concrete path, body bytes): bodies that name the route's fields with any values,
    any JSON, and bytes that are not JSON (or not UTF-8) at all."""

    @st.composite
    def one(draw: st.DrawFn) -> tuple[Endpoint, str, bytes]:
        route = draw(st.sampled_from(routes))
        param = draw(
            st.sampled_from(["x", "1", "a" * 300, "..", "%00", str(2**64)]) | st.text(min_size=1, max_size=12)
        )
        path = route.path
        while "{" in path:
            start, end = path.index("{"), path.index("}")
            path = path[:start] + quote(param, safe="") + path[end + 1 :]
        shaped = st.fixed_dictionaries({}, optional={f: values for f in route.fields})
        body = draw(
            shaped.map(lambda d: json.dumps(d).encode())
            | values.map(lambda v: json.dumps(v).encode())
            | st.binary(max_size=48)
        )
        return route, path, body

    return one()


@contextmanager
def sandbox(home: Path) -> Iterator[TestClient]:
    """The whole app, with its lifespan, limited to ``home``'s folders and hubs that refuse
    connections at once (nothing a random body says reaches outside)."""
    nowhere = "http://127.0.0.1:1"
    settings = Settings(
        home=home,
        allowed_dirs=[home],
        hf_endpoint=nowhere,
        modelscope_endpoint=nowhere,
        ollama_registry=nowhere,
        llama_server=None,
    )
    with TestClient(
        create_app(settings), base_url="http://localhost", raise_server_exceptions=False
    ) as client:
        yield client


def answered_cleanly(client: TestClient, method: str, path: str, body: bytes) -> httpx.Response:
    """Send it; the answer is not an internal error, and an error is in the project's shape."""
    kind = {"Content-Type": "application/json"}
    r = client.request(method, path, content=body if method != "GET" else None, headers=kind)
    assert r.status_code != 500, (method, path, body, r.text)
    if r.status_code >= 400:
        error = r.json()["error"]
        if path == "/v1/messages":  # Anthropic's shape, for its clients
            assert r.json()["type"] == "error", r.text
            assert {"message", "type"} <= set(error), r.text
        else:
            assert {"message", "type", "code"} <= set(error), r.text
    return r
