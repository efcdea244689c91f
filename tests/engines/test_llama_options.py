"""llama.cpp options as the engine itself shows them: with context shift a generation goes on
past a full context; without it, it stops there; cache reuse, no KV offload and the CPU-only
switch start an engine that answers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import RunningServer

pytestmark = pytest.mark.engine


def load(server: RunningServer, name: str, options: dict[str, Any]) -> None:
    r = server.http.put(f"/api/models/{name}/settings", json={"options": options, "replace": True})
    assert r.status_code == 200, r.text
    r = server.http.post(f"/api/models/{name}/load", json={})
    assert r.status_code == 200, r.text


def generate(server: RunningServer, name: str, n: int) -> dict[str, Any]:
    body = {"model": name, "prompt": "once", "max_tokens": n, "ignore_eos": True, "temperature": 0}
    r = server.http.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


@pytest.mark.slow
def test_context_shift_goes_past_a_full_context(server: RunningServer, zoo: Path, tmp_path: Path) -> None:
    for name in ("shift", "noshift"):
        copy = tmp_path / f"{name}.gguf"
        shutil.copyfile(zoo / "chat" / "tiny-llama-f32.gguf", copy)
        r = server.http.post("/api/models", json={"path": str(copy), "name": name})
        assert r.status_code == 201, r.text
    load(server, "shift", {"n_ctx": 256, "context_shift": True, "cache_reuse": 64, "no_kv_offload": True,
                           "cpu_only": True})  # fmt: skip
    assert generate(server, "shift", 300)["usage"]["completion_tokens"] == 300  # past the 256-token context
    load(server, "noshift", {"n_ctx": 256})  # one chat model at a time: "shift" unloads
    stopped = generate(server, "noshift", 300)
    assert stopped["usage"]["completion_tokens"] + stopped["usage"]["prompt_tokens"] <= 256
    assert stopped["choices"][0]["finish_reason"] == "length"
