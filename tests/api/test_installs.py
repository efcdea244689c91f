"""Installs through the API: refused at once when there is nothing modelyard can install."""

from __future__ import annotations

from typing import Any

from conftest import RunningServer
from waiting import eventually


def test_installs_that_cannot_start_are_refused_at_once(server: RunningServer) -> None:
    unknown = server.http.post("/api/backends/nope/install", json={})
    assert unknown.status_code == 400
    assert "no backend named 'nope'" in unknown.json()["error"]["message"]
    outside = server.http.post("/api/backends/llama-cpp-python/install", json={"variant": "cpu"})
    assert outside.status_code == 400
    assert "modelyard does not install llama-cpp-python" in outside.json()["error"]["message"]
    rocm = server.http.post("/api/backends/transformers/install", json={"variant": "rocm"})
    assert rocm.status_code == 400
    assert (rocm.json()["error"]["message"], rocm.json()["error"]["hint"]) == (
        "unknown variant 'rocm'",
        "cpu or cuda",
    )
    vulkan = server.http.post("/api/backends/transformers/install", json={"variant": "vulkan"})
    assert vulkan.json()["error"]["message"] == "unknown variant 'vulkan'"  # llama.cpp's alone
    assert server.http.get("/api/installs").json() == []
    assert server.http.get("/api/installs/7").status_code == 404
    listed = {b["name"]: b for b in server.http.get("/api/backends").json()}
    assert listed["llama-cpp-python"]["installable"] is False
    assert listed["transformers"]["installable"] is True
    assert "cpu" in listed["transformers"]["variants"]


def test_a_failed_install_says_why_and_leaves_nothing(server: RunningServer) -> None:
    r = server.http.post("/api/backends/llama.cpp/install", json={"variant": "cpu", "version": "0.0.1"})
    assert r.status_code == 202, r.text
    job = r.json()
    again = server.http.post("/api/backends/llama.cpp/install", json={"variant": "cpu", "version": "0.0.1"})
    assert again.status_code == 409  # one install of a backend at a time

    def ended() -> dict[str, Any] | None:
        found: dict[str, Any] = server.http.get(f"/api/installs/{job['id']}").json()
        return None if found["state"] == "running" else found

    job = eventually(ended, timeout=120, every=0.2, what="the install ended")
    assert job["state"] == "failed"
    assert job["error"].startswith("download failed")
    assert "the log" in job["hint"]
    events = server.http.get(f"/api/installs/{job['id']}/events").text  # an ended job: its last state, once
    assert events.count("data: ") == 1
    assert '"state": "failed"' in events
    llama = next(b for b in server.http.get("/api/backends").json() if b["name"] == "llama.cpp")
    assert "0.0.1" not in llama["versions"]
    # the Vulkan build the Settings page offers where a Vulkan driver is found is taken too
    r = server.http.post("/api/backends/llama.cpp/install", json={"variant": "vulkan", "version": "0.0.1"})
    assert r.status_code == 202, r.text
    assert r.json()["variant"] == "vulkan"
    job = eventually(lambda: (j := server.http.get(f"/api/installs/{r.json()['id']}").json())["state"] != "running"
                     and j, timeout=120, every=0.2, what="the Vulkan install ended")  # fmt: skip
    assert job["error"].startswith("download failed")
