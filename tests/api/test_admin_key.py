"""An admin key given to the server (MODELYARD_ADMIN_KEY, as a Kubernetes Secret gives it): the
server keeps it as the key env-admin, so a server on the network starts with a key; the same
value again changes nothing, a new one replaces the old, and one too short to be a secret is
refused at start."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from conftest import serve
from modelyard.errors import InvalidInput

FIRST = "first-secret-of-thirty-chars-0001"
SECOND = "second-secret-of-thirty-chars-002"


def models(url: str, secret: str | None) -> int:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.get(f"{url}/api/models", headers=headers).status_code


def test_the_server_keeps_the_admin_key_it_is_given(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with serve(home, admin_key=FIRST) as server:
        assert (models(server.url, None), models(server.url, FIRST)) == (401, 200)
        (key,) = server.http.get("/api/keys", headers={"Authorization": f"Bearer {FIRST}"}).json()
        assert (key["name"], key["scope"]) == ("env-admin", "admin")
    with serve(home, admin_key=FIRST) as server:  # again: the same key
        assert len(server.http.get("/api/keys", headers={"Authorization": f"Bearer {FIRST}"}).json()) == 1
    with serve(home, admin_key=SECOND) as server:  # rotated
        assert (models(server.url, FIRST), models(server.url, SECOND)) == (401, 200)
        assert len(server.http.get("/api/keys", headers={"Authorization": f"Bearer {SECOND}"}).json()) == 1


def test_a_short_admin_key_is_refused(tmp_path: Path) -> None:
    with (
        pytest.raises(InvalidInput, match="24 characters at least"),
        serve(tmp_path / "home", admin_key="short"),
    ):
        pass
