"""Load rules: one base model per category, chat and multimodal never together, one LoRA, reuse
of a matching model, busy models not cut off, loaded models not deleted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

import builders as b
from conftest import RunningServer, serve
from modelyard.errors import LoadRefused
from modelyard.runtime.rules import Loaded, LoadPolicy
from runtime.conftest import add, generating, load

pytestmark = pytest.mark.engine


def loaded(server: RunningServer) -> dict[str, str | None]:
    return {i["model"]: i["adapter"] for i in server.http.get("/api/instances").json()}


def test_policy_unit() -> None:
    policy = LoadPolicy()
    current = [Loaded("a", "chat", None), Loaded("e", "embedding", None)]
    assert policy.displaced("b", "chat", [], current) == ["a"]
    assert policy.displaced("v", "multimodal", [], current) == ["a"]
    assert policy.displaced("r", "rerank", [], current) == []
    with pytest.raises(LoadRefused, match="at most 1 LoRA"):
        policy.displaced("b", "chat", ["x", "y"], current)
    relaxed = LoadPolicy(one_per_category=False, exclusive=())
    assert relaxed.displaced("b", "chat", [], current) == []
    configured = LoadPolicy.from_settings(False, ["chat+embedding"], 2)
    assert configured.displaced("b", "chat", ["x", "y"], current) == ["a", "e"]  # one of the group at a time


def test_switching_models(server: RunningServer, tiny_models: dict[str, Path], tmp_path: Path) -> None:
    add(server, tiny_models["tiny-chat"])
    add(server, tiny_models["tiny-chat-b"])
    add(server, tiny_models["tiny-embed"])
    (vl,) = b.write_llama_gguf(tmp_path / "vl" / "tiny-vl.gguf", chat_template=b.CHAT_TEMPLATE)
    b.write_mmproj_gguf(tmp_path / "vl" / "mmproj-tiny-vl.gguf")
    assert add(server, vl)["category"] == "multimodal"
    load(server, "tiny-chat")
    load(server, "tiny-embed")
    assert loaded(server) == {"tiny-chat": None, "tiny-embed": None}  # chat and embedding together
    load(server, "tiny-chat-b")
    assert loaded(server) == {"tiny-chat-b": None, "tiny-embed": None}  # one chat model at a time
    # chat and multimodal are never loaded together (the projector won't load: the rule acts first)
    server.http.post("/api/models/tiny-vl/load", json={})
    assert "tiny-chat-b" not in loaded(server)


def test_lora_reuse_and_switch(server: RunningServer, tiny_models: dict[str, Path]) -> None:
    add(server, tiny_models["tiny-chat"])
    server.http.post(
        "/api/models/tiny-chat/adapters", json={"path": str(tiny_models["tiny-lora"]), "name": "style"}
    ).raise_for_status()
    server.http.patch("/api/models/tiny-chat", json={"autoload": True}).raise_for_status()
    (inst,) = load(server, "tiny-chat", adapter="style")["instances"]  # type: ignore[misc]
    body = {"model": "tiny-chat:style", "prompt": "hello", "max_tokens": 2}
    assert server.http.post("/v1/completions", json=body).status_code == 200
    # the same base + LoRA: reused, not reloaded
    (again,) = load(server, "tiny-chat", adapter="style")["instances"]  # type: ignore[misc]
    assert again["pid"] == inst["pid"]
    assert server.http.get("/api/instances").json()[0]["pid"] == inst["pid"]
    # the base without the LoRA: a switch (autoload is on), to a new process
    assert server.http.post("/v1/completions", json={**body, "model": "tiny-chat"}).status_code == 200
    assert loaded(server) == {"tiny-chat": None}
    r = server.http.post("/v1/completions", json={**body, "model": "tiny-chat:nope"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "adapter_not_found"


def test_busy_model_is_not_cut_off(tmp_path: Path, gemma: Path, tiny_models: dict[str, Path]) -> None:
    with serve(tmp_path / "home", switch_timeout=1.0) as server:
        add(server, gemma, name="gemma3")
        server.http.put("/api/models/gemma3/settings", json={"options": {"n_ctx": 1024, "threads": 2}})
        add(server, tiny_models["tiny-chat"])
        load(server, "gemma3")

        async def scenario() -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
                body = {"model": "gemma3", "prompt": "One, two, three,", "max_tokens": 400, "stream": True}
                async with generating(http, body) as lines:
                    # after the switch timeout (timed in tests/runtime/test_runtime.py)
                    r = await http.post("/api/models/tiny-chat/load", json={})
                    assert r.status_code == 409
                    assert "'gemma3' is still answering 1 request(s)" in r.json()["error"]["message"]
                    # the stream goes on, untouched (its next tokens are enough to see it)
                    rest: list[str] = []
                    async for line in lines:
                        if line.startswith("data: "):
                            rest.append(line)
                        if len(rest) > 10:
                            break
                    assert len(rest) > 10
                    assert all(line.startswith('data: {"') and '"error"' not in line for line in rest)

        asyncio.run(scenario())
        assert set(loaded(server)) == {"gemma3"}
        load(server, "tiny-chat")  # now it is free: the switch happens
        assert set(loaded(server)) == {"tiny-chat"}


def test_loaded_model_cannot_be_deleted_or_renamed(
    server: RunningServer, tiny_models: dict[str, Path]
) -> None:
    add(server, tiny_models["tiny-chat"])
    load(server, "tiny-chat")
    r = server.http.delete("/api/models/tiny-chat")
    assert r.status_code == 409
    assert "unload it first" in r.json()["error"]["hint"]
    assert server.http.patch("/api/models/tiny-chat", json={"name": "x"}).status_code == 409
    assert server.http.post("/api/models/tiny-chat/unload", json={}).status_code == 204
    assert server.http.delete("/api/models/tiny-chat").status_code == 204
    r = server.http.post("/api/models/tiny-chat/unload", json={})
    assert r.status_code == 404
