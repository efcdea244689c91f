"""No key, no network, at every moment: a server on a network address whose last key goes (the
old key of a rotation removed first, from the CLI in another process) answers this machine
only, and the API will not remove the last key itself. Requests come in through the app with
the client address the guard sees (Starlette's TestClient, without the app's start-up: only the
guard and the key routes are reached), so no network is used."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from api.test_security import bearer, make_keys
from modelyard.access.keys import Keys
from modelyard.api.app import create_app
from modelyard.catalog.store import Store
from modelyard.config import Settings
from waiting import eventually

NETWORK = ("203.0.113.7", 50000)  # a client elsewhere on the network (TEST-NET-3: never routed)
HERE = ("127.0.0.1", 50000)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def client(settings: Settings, address: tuple[str, int], app: FastAPI | None = None) -> TestClient:
    return TestClient(app or create_app(settings), client=address, base_url="http://127.0.0.1:11480")


@pytest.fixture
def on_network(home: Path) -> Iterator[tuple[TestClient, TestClient, dict[str, str]]]:
    secrets = make_keys(home, ("old", "admin", []))
    settings = Settings(home=home, host="0.0.0.0")
    app = create_app(settings)
    far, near = client(settings, NETWORK, app), client(settings, HERE, app)
    try:
        yield far, near, secrets
    finally:
        far.close()
        near.close()


@pytest.mark.slow  # waits for the guard to count the keys again (seconds)
def test_the_last_key_removed_elsewhere_closes_the_server_to_the_network(
    on_network: tuple[TestClient, TestClient, dict[str, str]], home: Path
) -> None:
    far, near, secrets = on_network
    assert far.get("/api/keys").status_code == 401  # a key is needed
    assert far.get("/api/keys", headers=bearer(secrets["old"])).status_code == 200
    # a rotation that removes the old key first, with `modelyard keys rm` (its own catalog)
    store = Store(f"sqlite:///{home / 'catalog.db'}")
    try:
        Keys(store).remove("old")
    finally:
        store.close()

    def refused() -> bool:
        return far.get("/api/keys").status_code == 403

    eventually(refused, timeout=15)  # the guard counts keys again within seconds
    for path in ("/api/keys", "/api/paths?prefix=/etc/", "/v1/models", "/metrics"):
        r = far.get(path)
        assert r.status_code == 403, (path, r.text)
        assert "has no API key: it answers this machine only" in r.json()["error"]["message"]
    settings = far.put("/api/models/x/settings", json={"options": {"trust_remote_code": True}})
    assert settings.status_code == 403
    assert far.get("/api/health").status_code == 200  # open, as always
    # this machine may still make the new key, and with it the network is served again
    made = near.post("/api/keys", json={"name": "new", "scope": "admin"})
    assert made.status_code == 201, made.text
    assert far.get("/api/keys").status_code == 401
    assert far.get("/api/keys", headers=bearer(made.json()["secret"])).status_code == 200


def test_the_api_keeps_the_last_key_of_a_server_on_the_network(
    on_network: tuple[TestClient, TestClient, dict[str, str]],
) -> None:
    far, _near, secrets = on_network
    admin = bearer(secrets["old"])
    r = far.delete("/api/keys/old", headers=admin)
    assert r.status_code == 409, r.text
    assert "'old' is the last API key, and this server listens on 0.0.0.0" in r.json()["error"]["message"]
    assert far.get("/api/keys", headers=admin).status_code == 200  # still there, still served
    made = far.post("/api/keys", json={"name": "new", "scope": "admin"}, headers=admin)
    assert made.status_code == 201
    assert far.delete("/api/keys/old", headers=admin).status_code == 204  # not the last one now


def test_a_loopback_or_insecure_server_may_drop_its_last_key(home: Path) -> None:
    secrets = make_keys(home, ("only", "admin", []))
    local = client(Settings(home=home), HERE)
    assert local.delete("/api/keys/only", headers=bearer(secrets["only"])).status_code == 204
    assert local.get("/api/keys").status_code == 200  # a laptop: open again, on loopback
    local.close()
    secrets = make_keys(home, ("only", "admin", []))
    far = client(Settings(home=home, host="0.0.0.0", insecure=True), NETWORK)
    assert far.delete("/api/keys/only", headers=bearer(secrets["only"])).status_code == 204
    assert far.get("/api/keys").status_code == 200  # asked for with --insecure
    far.close()
