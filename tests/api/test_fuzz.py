"""Every route of /api and /v1, each on its own, fed bodies as its schema describes them, the same
mutated (a field replaced, dropped, grown or nested, within bounds), any JSON and bytes that are
no JSON, with arbitrary path parameters, through the whole app and a model whose engine answers:
never a 5xx of modelyard's own, never a hang, every error in its dialect's documented shape
(bench/fuzz.py runs 100,000 cases per target). MODELYARD_FUZZ_CASES sets the cases per route
here, MODELYARD_FUZZ_SEED the seed (new each run otherwise; a failure names it)."""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from fuzzing import Endpoint, endpoints, fuzz, sandbox
from modelyard.api.app import create_app
from modelyard.config import Settings

CASES = int(os.environ.get("MODELYARD_FUZZ_CASES", "500"))
SEED = int(os.environ.get("MODELYARD_FUZZ_SEED") or random.randrange(2**32))


def _routes() -> list[Endpoint]:
    with tempfile.TemporaryDirectory() as tmp:
        return endpoints(create_app(Settings(home=Path(tmp))))


ROUTES = _routes()


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with sandbox(tmp_path_factory.mktemp("fuzz-home")) as running:
        yield running


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with sandbox(tmp_path_factory.mktemp("fuzz-home"), engine="llama") as running:
        yield running


def test_every_route_is_fuzzed() -> None:
    assert len([r for r in ROUTES if r.path.startswith("/v1")]) >= 15
    assert len([r for r in ROUTES if r.path.startswith("/api")]) >= 50
    assert all(r.schema for r in ROUTES if r.fields)  # every body model, its schema resolved


@pytest.mark.parametrize(
    "route",
    [
        pytest.param(r, id=r.name, marks=pytest.mark.engine if r.path.startswith("/v1") else ())
        for r in ROUTES
    ],
)
def test_arbitrary_requests_get_clean_answers(request: pytest.FixtureRequest, route: Endpoint) -> None:
    """/v1 through llama-server, where an engine error is no excuse for a 5xx; /api with the
    fake engine and the refusing hubs, which answer 502 and 503 as they should."""
    engine = "llama" if route.path.startswith("/v1") else "fake"
    client: TestClient = request.getfixturevalue(engine)
    outcome = fuzz(client, [route], CASES, SEED, bad_gateway=engine == "fake")
    assert outcome.cases == CASES
    assert client.get("/api/health").status_code == 200
