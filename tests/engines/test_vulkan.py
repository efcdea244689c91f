"""llama.cpp's Vulkan build, for real on the CPU through Mesa's software Vulkan driver
(lavapipe): the model's layers go to the Vulkan device and the greedy tokens are the CPU
build's. scripts/test builds it once per machine (`modelyard backends install llama.cpp
--variant vulkan`) and names it in MODELYARD_LLAMA_SERVER_VULKAN."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import RunningServer, llama_server, serve

pytestmark = pytest.mark.engine


PROMPT = "The capital of France is"


def greedy(server: RunningServer, gemma: Path, env: dict[str, str]) -> tuple[str, str]:
    """The completion, and the engine's log."""
    assert server.http.post("/api/models", json={"path": str(gemma), "name": "gemma"}).status_code == 201
    # Mesa 22.3's lavapipe crashes in llama.cpp's flash-attention shaders: both sides without it
    settings = {"options": {"flash_attn": "off", "n_ctx": 1024}}
    assert server.http.put("/api/models/gemma/settings", json=settings).status_code == 200
    r = server.http.post("/api/models/gemma/load", json={"env": env})
    assert r.status_code == 200, r.text
    # 8 tokens: past those, the two builds' different float sums can tip a near tie
    body = {"model": "gemma", "prompt": PROMPT, "max_tokens": 8, "temperature": 0}
    done = server.http.post("/v1/completions", json=body)
    assert done.status_code == 200, done.text
    (instance,) = server.http.get("/api/instances").json()
    log = server.http.get(f"/api/instances/{instance['id']}/logs", params={"lines": 5000}).text
    return done.json()["choices"][0]["text"], log


@pytest.mark.slow
def test_the_vulkan_build_gives_the_cpu_builds_tokens(gemma: Path, tmp_path: Path) -> None:
    vulkan = os.environ.get("MODELYARD_LLAMA_SERVER_VULKAN", "")
    assert Path(vulkan).is_file(), "scripts/test builds it and sets MODELYARD_LLAMA_SERVER_VULKAN"
    cpu_build = llama_server()
    assert cpu_build is not None
    with serve(tmp_path / "cpu", llama_server=cpu_build) as server:
        on_cpu, _ = greedy(server, gemma, {})
    # lavapipe is a CPU-type device, which ggml only takes when it is named
    with serve(tmp_path / "vulkan", llama_server=Path(vulkan)) as server:
        on_vulkan, log = greedy(
            server, gemma, {"GGML_VK_VISIBLE_DEVICES": "0", "LLAMA_ARG_LOG_VERBOSITY": "4"}
        )
    assert "Vulkan0 : llvmpipe" in log  # the device it found
    assert "Vulkan0 (llvmpipe" in log  # and the memory it used there (the model's layers)
    assert on_vulkan == on_cpu
