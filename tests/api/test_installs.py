"""Installs through the API: refused at once when there is nothing modelyard can install."""

from __future__ import annotations

from conftest import RunningServer


def test_installs_that_cannot_start_are_refused_at_once(server: RunningServer) -> None:
    unknown = server.http.post("/api/backends/nope/install", json={})
    assert unknown.status_code == 400
    assert "no backend named 'nope'" in unknown.json()["error"]["message"]
    outside = server.http.post("/api/backends/llama-cpp-python/install", json={"variant": "cpu"})
    assert outside.status_code == 400
    assert "modelyard does not install llama-cpp-python" in outside.json()["error"]["message"]
    assert server.http.post("/api/backends/transformers/install", json={"variant": "rocm"}).status_code == 400
    assert server.http.get("/api/installs").json() == []
    assert server.http.get("/api/installs/7").status_code == 404
    listed = {b["name"]: b for b in server.http.get("/api/backends").json()}
    assert listed["llama-cpp-python"]["installable"] is False
    assert listed["transformers"]["installable"] is True
    assert "cpu" in listed["transformers"]["variants"]
