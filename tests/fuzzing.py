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
from dataclasses import dataclass, field
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
    schema: dict[str, Any] = field(default_factory=dict, compare=False)  # its body's, refs resolved

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


# Routes left out: they would change who may call (keys), start an install (minutes of pip), or
# stream until the client leaves.
LEFT_OUT = {("POST", "/api/keys"), ("POST", "/api/backends/{name}/install")}
STREAMS = ("/events", "/stream", "/logs")
MODEL = "fake"  # the model the sandbox serves (an engine that answers chat, tests/fake_engine.py)


def _resolved(node: Any, components: dict[str, Any], refs: int = 0) -> Any:
    """``node`` with its $refs replaced by what they name (8 deep at most: no schema loops)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            return (
                _resolved(components.get(ref.rsplit("/", 1)[1], {}), components, refs + 1) if refs < 8 else {}
            )
        return {k: _resolved(v, components, refs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolved(v, components, refs) for v in node]
    return node


def endpoints(app: Any) -> list[Endpoint]:
    """The routes of /api and /v1 from the app's OpenAPI schema, with their bodies' schemas."""
    schema = app.openapi()
    components = schema.get("components", {}).get("schemas", {})
    found = []
    for path, operations in schema["paths"].items():
        if not path.startswith(("/api", "/v1")) or path.endswith(STREAMS):
            continue
        for method, op in operations.items():
            if (method.upper(), path) in LEFT_OUT:
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            body = _resolved(body, components)
            found.append(Endpoint(method.upper(), path, tuple(body.get("properties", {})), body))
    return found


BIG = 4096  # how far a mutation grows a string, and (/ 64) a list


def shaped(schema: dict[str, Any], key: str = "", depth: int = 0) -> st.SearchStrategy[Any]:
    """Values a JSON schema describes (near its bounds too): what a client that read the docs
    sends."""
    if depth > 6:
        return scalars
    if key == "model":  # mostly the model that serves, so that bodies reach its engine
        return st.one_of(
            st.just(MODEL), st.sampled_from([MODEL, f"{MODEL}:lora", "nope", ""]), st.text(max_size=12)
        )
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return st.one_of(
                [shaped(s, key, depth + 1) for s in schema[union] if isinstance(s, dict)] or [scalars]
            )
    kind = schema.get("type")
    if kind == "string":
        low, high = schema.get("minLength", 0), min(schema.get("maxLength", 64), 64)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda t: low <= len(t) <= high)
        special = ["", "/", "/etc/passwd", "file:///etc/shadow", "~nosuchuser", "\udcff", "x\n", "a" * 300]
        return st.text(min_size=min(low, high), max_size=high) | st.sampled_from(
            [t for t in special if len(t) >= low] or ["x" * low]
        )
    if kind == "integer":
        low, high = schema.get("minimum", -(2**40)), schema.get("maximum", 2**40)
        return st.integers(int(low) - 1, int(high) + 1)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(shaped(schema.get("items", {}), key, depth + 1), max_size=4)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        if not props:
            return st.dictionaries(st.text(max_size=8), values, max_size=3)
        required = [k for k in schema.get("required", []) if k in props]
        return st.fixed_dictionaries(
            {k: shaped(props[k], k, depth + 1) for k in required},
            optional={k: shaped(v, k, depth + 1) for k, v in props.items() if k not in required},
        )
    return values


def mutated(body: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``body`` with one of its fields replaced by anything, dropped, or grown (bounded)."""
    if not body:
        return st.just(body)
    keys = sorted(body)

    @st.composite
    def one(draw: st.DrawFn) -> dict[str, Any]:
        out = dict(body)
        key = draw(st.sampled_from(keys))
        how = draw(st.sampled_from(["replace", "drop", "grow", "nest"]))
        if how == "replace":
            out[key] = draw(values)
        elif how == "drop":
            del out[key]
        elif how == "grow":
            out[key] = draw(
                st.sampled_from(["x" * BIG, ["x"] * (BIG // 64), {str(i): i for i in range(BIG // 64)}])
            )
        else:
            out[key] = {"a": [{"b": [out.get(key)]}]}
        return out

    return one()


def bodies(route: Endpoint) -> st.SearchStrategy[bytes]:
    """A route's bodies: as its schema says, mutated, any JSON, and bytes that are no JSON."""
    as_documented = shaped(route.schema) if route.schema else st.just({})
    return (
        as_documented.map(lambda d: json.dumps(d).encode())
        | as_documented.flatmap(lambda d: mutated(d) if isinstance(d, dict) else st.just(d)).map(
            lambda d: json.dumps(d).encode()
        )
        | values.map(lambda v: json.dumps(v).encode())
        | st.binary(max_size=48)
    )


def requests(routes: list[Endpoint]) -> st.SearchStrategy[tuple[Endpoint, str, bytes]]:
    """(route, concrete path, body bytes) for one of ``routes``."""

    @st.composite
    def one(draw: st.DrawFn) -> tuple[Endpoint, str, bytes]:
        route = draw(st.sampled_from(routes))
        param = draw(
            st.sampled_from(["x", "1", MODEL, "a" * 300, "..", "%00", str(2**64)])
            | st.text(min_size=1, max_size=12)
        )
        path = route.path
        while "{" in path:
            start, end = path.index("{"), path.index("}")
            path = path[:start] + quote(param, safe="") + path[end + 1 :]
        return route, path, draw(bodies(route))

    return one()


@contextmanager
def sandbox(home: Path) -> Iterator[TestClient]:
    """The whole app, with its lifespan, limited to ``home``'s folders, hubs that refuse
    connections at once (nothing a random body says reaches outside), and one model, ``fake``:
    an engine that answers chat (and 404 to the rest, which the gateway translates)."""
    from fake_engine import FakeEngine

    nowhere = "http://127.0.0.1:1"
    settings = Settings(
        home=home,
        allowed_dirs=[home],
        hf_endpoint=nowhere,
        modelscope_endpoint=nowhere,
        ollama_registry=nowhere,
        llama_server=None,
    )
    engine = FakeEngine()
    url = engine.start()
    try:
        with TestClient(
            create_app(settings), base_url="http://localhost", raise_server_exceptions=False
        ) as client:
            assert client.post("/api/models", json={"url": url, "name": MODEL}).status_code == 201
            assert client.post(f"/api/models/{MODEL}/load", json={}).status_code == 200
            yield client
    finally:
        engine.stop()


HANG = 10.0  # seconds an answer may take in the sandbox (nothing in it is slow)


def answered_cleanly(client: TestClient, method: str, path: str, body: bytes) -> httpx.Response:
    """Send it; the answer comes in time, is no server error of modelyard's own (a 502 or 503
    says a hub or an engine cannot be reached, which in the sandbox is true), and an error is in
    its dialect's documented shape."""
    kind = {"Content-Type": "application/json"}
    start = time.perf_counter()
    r = client.request(method, path, content=body if method != "GET" else None, headers=kind)
    took = time.perf_counter() - start
    assert took < HANG, (method, path, body, f"answered after {took:.1f} s")
    assert r.status_code < 500 or r.status_code in (502, 503), (method, path, body, r.text)
    if r.status_code >= 400:
        answer = r.json()
        error = answer["error"]
        if path == "/v1/messages":  # Anthropic's shape, for its clients
            assert answer["type"] == "error", r.text
            assert {"message", "type"} <= set(error), r.text
        else:
            assert set(answer) == {"error"}, r.text
            assert {"message", "type", "code", "param", "hint"} == set(error), r.text
    return r
