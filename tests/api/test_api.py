"""The REST API on a real server: every call a user or the web UI makes, and the error shapes."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import builders as b
from conftest import RunningServer


def test_health_and_docs(server: RunningServer) -> None:
    assert server.http.get("/api/health").json()["status"] == "ok"
    assert server.http.get("/docs").status_code == 200
    paths = server.http.get("/openapi.json").json()["paths"]
    assert {"/api/models", "/api/models/{name}", "/api/scan", "/api/inspect"} <= set(paths)


def test_a_connection_left_idle_as_long_as_clients_pools_keep_one_still_answers(
    server: RunningServer,
) -> None:
    """A client's pool keeps an idle connection for 5 s (httpx) and sends its next request on
    it: the server keeps it open longer, so that the request is answered, not reset."""
    address = urlsplit(server.url)
    request = f"GET /api/health HTTP/1.1\r\nHost: {address.netloc}\r\n\r\n".encode()
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        for pause in (0.0, 6.0):
            time.sleep(pause)
            connection.sendall(request)
            assert connection.recv(4096).startswith(b"HTTP/1.1 200 OK")


def test_import_list_show_edit_delete(server: RunningServer, zoo: Path) -> None:
    http = server.http
    r = http.post(
        "/api/models", json={"path": str(zoo / "vision/tiny-vl.gguf"), "description": "tiny vision"}
    )
    assert r.status_code == 201, r.text
    model = r.json()
    assert (model["name"], model["category"], model["quantization"], model["loaded"]) == (
        "tiny-vl",
        "multimodal",
        "F32",
        False,
    )
    assert model["components"][0]["role"] == "mmproj"
    http.post("/api/models", json={"path": str(zoo / "hf/tiny-minilm")}).raise_for_status()
    assert [m["name"] for m in http.get("/api/models").json()] == ["tiny-minilm", "tiny-vl"]
    assert [m["name"] for m in http.get("/api/models", params={"category": "embedding"}).json()] == [
        "tiny-minilm"
    ]
    r = http.patch("/api/models/tiny-vl", json={"name": "vl", "description": "renamed"})
    assert (r.json()["name"], r.json()["description"]) == ("vl", "renamed")
    assert http.get("/api/models/vl").json()["facts"]["block_count"] == 2
    r = http.put("/api/models/vl/settings", json={"options": {"n_ctx": 256}})
    assert r.json()["saved"] == {"n_ctx": 256}
    assert r.json()["effective"]["n_ctx"] == 256
    assert http.delete("/api/models/vl").status_code == 204
    assert http.get("/api/models/vl").status_code == 404
    assert (zoo / "vision/tiny-vl.gguf").is_file()


def test_adapters_and_components(server: RunningServer, zoo: Path, tmp_path: Path) -> None:
    http = server.http
    http.post("/api/models", json={"path": str(zoo / "chat-lora/tiny-base.gguf")}).raise_for_status()
    r = http.post(
        "/api/models/tiny-base/adapters",
        json={"path": str(zoo / "chat-lora/tiny-lora.gguf"), "name": "style"},
    )
    assert r.status_code == 201
    assert r.json()["adapters"][0]["name"] == "style"
    bad = b.write_lora_gguf(tmp_path / "other.gguf", arch="qwen2")
    r = http.post("/api/models/tiny-base/adapters", json={"path": str(bad)})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "incompatible_adapter"
    assert http.delete("/api/models/tiny-base/adapters/style").json()["adapters"] == []
    r = http.put(
        "/api/models/tiny-base/components/mmproj", json={"path": str(zoo / "vision/mmproj-tiny-vl-f16.gguf")}
    )
    assert r.json()["category"] == "multimodal"
    assert http.delete("/api/models/tiny-base/components/mmproj").json()["components"] == []


def test_bad_input_gets_clear_errors_and_server_stays_up(
    server: RunningServer, zoo: Path, tmp_path: Path
) -> None:
    http = server.http
    (good,) = b.write_llama_gguf(tmp_path / "good.gguf")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07onnx")
    tflite = tmp_path / "model.tflite"
    tflite.write_bytes(b"TFL3")
    cases = [
        ({"path": str(truncated)}, 422, "malformed_file", "truncated"),
        ({"path": str(tmp_path / "missing.gguf")}, 404, "path_not_found", "no such file"),
        ({"path": str(tflite)}, 422, "unsupported_format", ".tflite is not a model format"),
        ({"path": str(onnx)}, 422, "unsupported_format", "one ONNX model on its own"),
        ({"path": str(zoo / "chat-lora/tiny-lora.gguf")}, 400, "invalid_import", "LoRA adapter"),
        ({"path": str(good), "category": "poetry"}, 400, "invalid_import", "unknown category"),
        ({"nothing": 1}, 400, "invalid_request", "give a path (a model file or folder) or a url"),
    ]
    for body, status, code, text in cases:
        r = http.post("/api/models", json=body)
        assert r.status_code == status, (body, r.text)
        error = r.json()["error"]
        assert error["code"] == code, error
        assert text in error["message"], error
    assert http.post("/api/models", json={"path": str(truncated)}).json()["error"]["hint"]
    # nothing half-written: the library is empty, and the server still answers
    assert http.get("/api/models").json() == []
    assert http.get("/api/health").status_code == 200
    http.post("/api/models", json={"path": str(good)}).raise_for_status()
    r = http.post("/api/models", json={"path": str(good)})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "model_exists"
    r = http.put("/api/models/good/settings", json={"options": {"n_ctx": "lots"}})
    assert r.status_code == 400
    assert "n_ctx" in r.json()["error"]["message"]


def test_inspect_and_scan(server: RunningServer, zoo: Path) -> None:
    http = server.http
    r = http.post("/api/inspect", json={"path": str(zoo / "hf/tiny-gptq")})
    assert (r.json()["quantization"], r.json()["loaders"]) == (
        "GPTQ 4-bit g128",
        ["vllm", "exllamav2", "transformers"],
    )
    assert http.get("/api/models").json() == []  # inspecting imports nothing
    report = http.post("/api/scan", json={"path": str(zoo)}).json()
    assert len(report["imported"]) == 19
    assert report["failed"] == []
    again = http.post("/api/scan", json={"path": str(zoo)}).json()
    assert again["imported"] == []
    assert len(again["unchanged"]) >= 18
    r = http.post("/api/scan", json={"path": str(zoo / "nowhere")})
    assert r.status_code == 404
