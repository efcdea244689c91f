"""Every route of /api and /v1 fed arbitrary bodies and path parameters through the whole app:
never a 500, every error in the project's shape (bench/fuzz.py runs 100,000 cases each)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

from fuzzing import Endpoint, answered_cleanly, endpoints, requests, sandbox


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with sandbox(tmp_path_factory.mktemp("fuzz-home")) as running:
        yield running


@pytest.fixture(scope="module")
def routes(client: TestClient) -> dict[str, list[Endpoint]]:
    every = endpoints(client.app)
    return {
        "api": [e for e in every if e.path.startswith("/api")],
        "v1": [e for e in every if e.path.startswith("/v1")],
    }


@pytest.mark.parametrize("surface", ["api", "v1"])
def test_arbitrary_requests_get_clean_answers(
    client: TestClient, routes: dict[str, list[Endpoint]], surface: str
) -> None:
    assert len(routes[surface]) >= 8

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(request=requests(routes[surface]))
    def fuzz(request: tuple[Endpoint, str, bytes]) -> None:
        route, path, body = request
        answered_cleanly(client, route.method, path, body)

    fuzz()
    assert client.get("/api/health").status_code == 200
