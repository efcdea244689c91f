"""What the fuzz tests (and bench/fuzz.py, with many more cases) feed modelyard: damaged GGUF and
safetensors files, and arbitrary bodies for every route of /api and /v1, sent through the whole
app (guard, routes, error handlers). The invariants: a typed error or a result, never a 500, a
hang or runaway memory."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import os
import random
import resource
import string
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


# -- requests ----------------------------------------------------------------------------------
#
# Drawn by a seeded random source rather than hypothesis: a few thousand cases per route in each
# test run cost milliseconds each this way, and a failure names the request as sent (no shrinking
# needed to read it).


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
MODEL = "served"  # the model the sandbox serves


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
LETTERS = string.ascii_letters + string.digits + string.punctuation + " \t\né漢\u0000\u200b\U0001f600"
TEXTS = ["", "x", "/", "..", "../../etc/passwd", "a\u0000b", "x" * 300, "chatml", "-1"]
PATHLIKE = ["", "/", "/etc/passwd", "file:///etc/shadow", "~nosuchuser", "\udcff", "x\n", "a" * 300]
PARAMS = ["x", "1", MODEL, "a" * 300, "..", "%00", str(2**64)]
NAME = string.ascii_letters + string.digits + "_.:-"  # the one pattern the schemas have


class Cases:
    """Requests a careless or hostile client sends, from ``seed``: bodies as a route's schema
    describes them (near its bounds too), the same mutated (a field replaced by anything, dropped,
    grown within bounds, or nested), any JSON, and bytes that are no JSON; arbitrary path
    parameters."""

    def __init__(self, seed: int) -> None:
        self.rand = random.Random(seed)

    def text(self, high: int = 40, low: int = 0, letters: str = LETTERS) -> str:
        return "".join(self.rand.choices(letters, k=self.rand.randint(low, high)))

    def scalar(self) -> Any:
        r = self.rand
        kind = r.randrange(6)
        if kind == 0:
            return None
        if kind == 1:
            return r.random() < 0.5
        if kind == 2:
            return r.choice([0, 1, -1, 2**31, 2**63, -(2**70), 2**70, r.randint(-1000, 1000)])
        if kind == 3:
            return r.choice([0.0, -0.0, 0.5, 1e308, -1e-308, r.uniform(-1e6, 1e6)])
        return self.text() if kind == 4 else r.choice(TEXTS)

    def value(self, depth: int = 0) -> Any:
        """Any JSON: scalars, lists and objects, 3 deep at most."""
        r = self.rand
        if depth >= 3 or r.random() < 0.6:
            return self.scalar()
        if r.random() < 0.5:
            return [self.value(depth + 1) for _ in range(r.randint(0, 4))]
        return {self.text(12): self.value(depth + 1) for _ in range(r.randint(0, 4))}

    def shaped(self, schema: dict[str, Any], key: str = "", depth: int = 0) -> Any:
        """A value ``schema`` describes: what a client that read the docs sends."""
        r = self.rand
        if depth > 12:
            return self.scalar()
        if key == "model":  # mostly the model that serves, so that bodies reach its engine
            return r.choice([MODEL, MODEL, MODEL, f"{MODEL}:lora", "nope", "", self.text(12)])
        if "enum" in schema:
            return r.choice(schema["enum"])
        if "const" in schema:
            return schema["const"]
        for union in ("anyOf", "oneOf"):
            if union in schema:
                options = [s for s in schema[union] if isinstance(s, dict)]
                return self.shaped(r.choice(options), key, depth + 1) if options else self.value()
        kind = schema.get("type")
        if kind == "string":
            low, high = schema.get("minLength", 0), min(schema.get("maxLength", 64), 64)
            if "pattern" in schema:
                return self.text(high, max(low, 1), NAME)
            if r.random() < 0.2:
                return r.choice([t for t in PATHLIKE if len(t) >= low] or ["x" * low])
            return self.text(high, min(low, high))
        if kind == "integer":
            low, high = int(schema.get("minimum", -(2**40))), int(schema.get("maximum", 2**40))
            return (
                r.choice([low - 1, low, high, high + 1])
                if r.random() < 0.2
                else r.randint(low, min(high, low + 4096))
            )
        if kind == "number":
            return r.choice([0.0, -1.0, 1e12, r.uniform(-1e12, 1e12), r.uniform(-2, 2)])
        if kind == "boolean":
            return r.random() < 0.5
        if kind == "null":
            return None
        if kind == "array":
            low = schema.get("minItems", 0) if r.random() < 0.9 else 0
            items = schema.get("items", {})
            return [self.shaped(items, key, depth + 1) for _ in range(r.randint(low, max(low, 4)))]
        if kind == "object" or "properties" in schema:
            props = schema.get("properties", {})
            if not props:
                return {self.text(8): self.value() for _ in range(r.randint(0, 3))}
            required = set(schema.get("required", []))
            return {
                k: self.shaped(v, k, depth + 1) for k, v in props.items() if k in required or r.random() < 0.3
            }
        return self.value()

    def mutated(self, body: Any) -> Any:
        """``body`` with one of its fields replaced by anything, dropped, grown or nested."""
        if not isinstance(body, dict) or not body:
            return body
        r = self.rand
        out = dict(body)
        key = r.choice(sorted(out))
        how = r.choice(["replace", "drop", "grow", "nest"])
        if how == "replace":
            out[key] = self.value()
        elif how == "drop":
            del out[key]
        elif how == "grow":
            out[key] = r.choice(["x" * BIG, ["x"] * (BIG // 64), {str(i): i for i in range(BIG // 64)}])
        else:
            out[key] = {"a": [{"b": [out[key]]}]}
        return out

    def body(self, route: Endpoint) -> bytes:
        how = self.rand.randrange(4)
        if how == 3:
            return self.rand.randbytes(self.rand.randint(0, 48))
        if how == 2:
            data = self.value()
        else:
            data = self.shaped(route.schema) if route.schema else {}
            if how == 1:
                data = self.mutated(data)
        return json.dumps(data).encode()

    def path(self, route: Endpoint) -> str:
        param = self.rand.choice(PARAMS) if self.rand.random() < 0.5 else self.text(12, 1)
        path = route.path
        while "{" in path:
            start, end = path.index("{"), path.index("}")
            path = path[:start] + quote(param, safe="") + path[end + 1 :]
        return path


@contextmanager
def sandbox(home: Path, engine: str = "fake") -> Iterator[TestClient]:
    """The whole app, with its lifespan, limited to ``home``'s folders, hubs that refuse
    connections at once (nothing a random body says reaches outside), and one model, ``served``:
    by ``engine`` "fake", an engine that answers chat (tests/fake_engine.py: 404 to the rest,
    which the gateway translates); by "llama", llama-server (MODELYARD_LLAMA_SERVER, else as
    the product finds it) with a tiny random GGUF: the real engine behind the real gateway."""
    from fake_engine import FakeEngine

    nowhere = "http://127.0.0.1:1"
    binary = os.environ.get("MODELYARD_LLAMA_SERVER")
    settings = Settings(
        home=home,
        allowed_dirs=[home],
        hf_endpoint=nowhere,
        modelscope_endpoint=nowhere,
        ollama_registry=nowhere,
        llama_server=Path(binary) if binary else None,
    )
    with contextlib.ExitStack() as stack:
        if engine == "llama":
            (gguf,) = b.write_llama_gguf(home / "models" / "tiny-chat.gguf", chat_template=b.CHAT_TEMPLATE)
            source: dict[str, Any] = {"path": str(gguf), "name": MODEL}
        else:
            fake = FakeEngine()
            source = {"url": fake.start(), "name": MODEL}
            stack.callback(fake.stop)
        client = stack.enter_context(
            TestClient(create_app(settings), base_url="http://localhost", raise_server_exceptions=False)
        )
        r = client.post("/api/models", json=source)
        assert r.status_code == 201, r.text
        if engine == "llama":  # answers of 8 tokens at most (64 prompts in one request: 512)
            r = client.post("/api/deployments", json={"model": MODEL, "args": ["--n-predict", "8"]})
        else:
            r = client.post(f"/api/models/{MODEL}/load", json={})
        assert r.status_code in (200, 201), r.text
        yield client


HANG = 20.0  # seconds an answer may take in the sandbox (nothing in it is slow, even on a busy machine)


@dataclass
class Outcome:
    cases: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)


def fuzz(client: TestClient, routes: list[Endpoint], cases: int, seed: int, *, bad_gateway: bool) -> Outcome:
    """Send ``cases`` requests, each to one of ``routes``, through the app ``client`` runs, in the
    app's own event loop (no thread hop per request). Each answer comes in time, is no server
    error (a 502 or 503, which says that a hub or an engine cannot be reached, only where
    ``bad_gateway``: the sandbox's hubs refuse, the fake engine has one route; llama-server has
    no reason to fail), and an error is in its dialect's documented shape: an AssertionError
    names the request and the seed (MODELYARD_FUZZ_SEED replays it) otherwise."""
    assert client.portal is not None, "enter the client first (sandbox does)"
    outcome: Outcome = client.portal.call(_fuzz, client.app, routes, cases, seed, bad_gateway)
    return outcome


async def _fuzz(app: Any, routes: list[Endpoint], cases: int, seed: int, bad_gateway: bool) -> Outcome:
    draw = Cases(seed)
    outcome = Outcome()
    headers = {"Content-Type": "application/json"}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        for _ in range(cases):
            route = draw.rand.choice(routes)
            path, body = draw.path(route), draw.body(route)
            case = f"{route.method} {path} {body[:2000]!r} (seed {seed})"
            content = body if route.method != "GET" else None
            sent = asyncio.ensure_future(http.request(route.method, path, content=content, headers=headers))
            # not wait_for: it waits for the cancelled request to end too, and a request stuck
            # for good would hang the test run instead of failing this case
            await asyncio.wait({sent}, timeout=HANG)
            if not sent.done():
                sent.cancel()
                raise AssertionError(f"no answer in {HANG:.0f} s: {case}")
            r = sent.result()
            check_answer(path, r, case, bad_gateway)
            outcome.cases += 1
            outcome.statuses[r.status_code] += 1
    return outcome


def check_answer(path: str, r: httpx.Response, case: str, bad_gateway: bool) -> None:
    assert r.status_code < 500 or (bad_gateway and r.status_code in (502, 503)), (case, r.status_code, r.text)
    if r.status_code >= 400:
        answer = r.json()
        error = answer["error"]
        if path == "/v1/messages":  # Anthropic's shape, for its clients
            assert answer["type"] == "error", (case, r.text)
            assert {"message", "type"} <= set(error), (case, r.text)
        else:
            assert set(answer) == {"error"}, (case, r.text)
            assert {"message", "type", "code", "param", "hint"} == set(error), (case, r.text)
