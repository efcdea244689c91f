"""Bad input as a new user (or an attacker) sends it: each gets a clear 4xx in the project's error
shape, the server keeps answering, and nothing of a file's content leaks into an error."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx

import builders as b
from conftest import RunningServer


def error_of(r: httpx.Response, status: int, code: str | None = None) -> dict[str, str]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body  # the project's shape, never FastAPI's {"detail": ...}
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]  # type: ignore[no-any-return]


def test_a_pipe_is_never_opened(server: RunningServer, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    fifo = folder / "model.gguf"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer for ever
    (good,) = b.write_llama_gguf(folder / "tiny.gguf")

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
            calls = [http.post("/api/inspect", json={"path": str(fifo)}) for _ in range(12)]
            calls += [http.post("/api/models", json={"path": str(fifo)}) for _ in range(12)]
            return await asyncio.gather(*calls)

    for r in asyncio.run(scenario()):  # more than the server's worker threads, all answered
        assert "not a regular file" in error_of(r, 422, "unsupported_format")["message"]
    report = server.http.post("/api/scan", json={"path": str(folder)}).json()
    assert report["imported"] == ["tiny"]
    assert [f["path"] for f in report["failed"]] == [str(fifo)]
    assert server.http.get("/api/health").status_code == 200
    assert server.http.get("/v1/models").status_code == 200
    assert good.exists()


def test_impossible_paths_and_ids(server: RunningServer, tmp_path: Path) -> None:
    http = server.http
    long_part = str(tmp_path / ("x" * 300) / "m.gguf")
    long_path = "/" + "/".join(["abcdefgh"] * 600)
    for path, what in ((long_part, "longer than 255 bytes"), (long_path, "4096 at most")):
        for route in ("/api/inspect", "/api/models", "/api/scan"):
            assert what in error_of(http.post(route, json={"path": path}), 400, "invalid_input")["message"]
        error_of(http.get("/api/paths", params={"prefix": path}), 400, "invalid_input")
    nul = http.post("/api/inspect", json={"path": "/tmp/a\u0000b.gguf"})
    assert "NUL" in error_of(nul, 400, "invalid_input")["message"]
    for device in ("/proc/self/mem", "/dev/zero", "/dev/null"):
        r = http.post("/api/inspect", json={"path": device})
        assert r.status_code in (400, 422), (device, r.text)
        error_of(r, r.status_code)
    for big in (2**63, 2**64, 10**30):
        error_of(http.get(f"/api/downloads/{big}"), 400, "invalid_request")
        error_of(http.post(f"/api/downloads/{big}/pause"), 400, "invalid_request")
        error_of(http.get(f"/api/instances/{big}/logs"), 400, "invalid_request")
    assert http.get("/api/health").status_code == 200


def test_paths_users_and_refs_that_cannot_be_are_client_errors(server: RunningServer, tmp_path: Path) -> None:
    """Each of these was a 500 with the connection dropped."""
    http = server.http
    surrogate = b'{"path": "/tmp/\\udcff.gguf", "ref": "a/b", "base": "\\udcff"}'  # no Unicode text
    for route in ("/api/inspect", "/api/models", "/api/scan", "/api/downloads", "/v1/chat/completions"):
        r = http.post(route, content=surrogate, headers={"content-type": "application/json"})
        assert "not valid JSON: " in error_of(r, 400, "invalid_request")["message"]
    for route in ("/api/inspect", "/api/models", "/api/scan"):
        r = http.post(route, json={"path": "~nosuchuser/models/m.gguf"})
        assert "no user '~nosuchuser'" in error_of(r, 400, "invalid_input")["message"]
        assert "empty" in error_of(http.post(route, json={"path": ""}), 400, "invalid_input")["message"]
    error_of(http.get("/api/paths", params={"prefix": "~nosuchuser/"}), 400, "invalid_input")
    long_ref = "org/" + "m" * 5000
    error_of(http.post("/api/downloads", json={"ref": long_ref}), 400, "invalid_ref")
    error_of(http.get("/api/hub/files", params={"ref": long_ref}), 400, "invalid_ref")
    # a name with a newline at its end, or longer than the hubs take, never reaches a hub
    for ref in ("org/model\n:Q4_K_M", "org/" + "m" * 97):
        error_of(http.post("/api/downloads", json={"ref": ref}), 400, "invalid_ref")
    (tiny,) = b.write_llama_gguf(tmp_path / "tiny.gguf")
    assert http.post("/api/models", json={"path": str(tiny), "name": "tiny"}).status_code == 201
    error_of(http.patch("/api/models/tiny", json={"name": "tiny\n"}), 400, "invalid_name")
    for url in ("http://127.0.0.1:abc/v1", "http://127.0.0.1:99999/v1", "http://[::1/v1"):
        r = http.post("/api/models", json={"url": url})
        assert "not a usable URL" in error_of(r, 400, "invalid_import")["message"]
    assert http.get("/api/health").status_code == 200  # the connection and the server go on


def test_bodies_that_do_not_parse_get_the_project_shape(server: RunningServer) -> None:
    http = server.http
    cases = [
        (b'{"path": "\xff\xfe"}', "/api/models"),  # not UTF-8
        (b'{"path": ', "/api/models"),  # cut short
        (b"[1, 2]", "/api/models"),
        (b'{"path": "\xff"}', "/v1/chat/completions"),
        (b"\x00\x01", "/v1/completions"),
    ]
    for body, route in cases:
        r = http.post(route, content=body, headers={"Content-Type": "application/json"})
        error_of(r, 400)
    error_of(http.get("/api/nowhere"), 404, "not_found")
    error_of(http.delete("/api/health"), 405, "method_not_allowed")


def test_errors_never_quote_a_files_content(server: RunningServer, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:hunter2:/root:/bin/bash\n")
    for name in ("model.gguf", "model.safetensors", "model.bin"):
        link = tmp_path / name
        link.symlink_to(secret)
        r = server.http.post("/api/inspect", json={"path": str(link)})
        assert r.status_code in (400, 422), r.text
        text = r.text
        for piece in ("root", "hunter2", "x:0"):
            assert piece not in text.replace(str(tmp_path), ""), (name, text)
        # nor the bytes read as a number
        assert str(int.from_bytes(b"root:x:0", "little")) not in text


def test_settings_saved_at_once_all_stay(server: RunningServer, tmp_path: Path) -> None:
    (path,) = b.write_llama_gguf(tmp_path / "m.gguf")
    server.http.post("/api/models", json={"path": str(path)}).raise_for_status()
    options = [
        {"n_batch": 256}, {"threads": 2}, {"threads_batch": 2}, {"mlock": True}, {"numa": True},
        {"no_mmap": True}, {"flash_attn": "off"}, {"cache_type_k": "q8_0"}, {"cache_type_v": "q8_0"},
        {"rope_freq_base": 10000.0},
    ]  # fmt: skip

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            return await asyncio.gather(
                *(http.put("/api/models/m/settings", json={"options": o}) for o in options)
            )

    assert all(r.status_code == 200 for r in asyncio.run(scenario()))
    saved = server.http.get("/api/models/m/settings").json()["saved"]
    assert saved == {k: v for o in options for k, v in o.items()}
