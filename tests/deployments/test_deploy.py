"""Deployments through a real server and real llama-server engines: deploy from the fake hub in
one command and answer through the openai client, a rolling edit under traffic with no failed
request, a deleted instance replaced, engine arguments checked against `--help`, two llama.cpp
versions side by side."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner

from conftest import RunningServer, llama_server, serve
from fakehub import FakeHub
from modelyard.cli.main import app

# The second llama.cpp build scripts/test makes beside the default one (0.3.36's sources).
SECOND = "0.3.35"
pytestmark = [pytest.mark.slow, pytest.mark.engine]


@pytest.fixture
def server(tmp_path: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    default = llama_server()
    assert default is not None, "scripts/test sets MODELYARD_LLAMA_SERVER"
    second = default.parent / f"llama-server-{SECOND}"
    assert second.is_file(), (
        f"scripts/test builds {second}: `modelyard backends install llama.cpp --version {SECOND}`"
    )
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / second.name).symlink_to(second)
    with serve(
        home, hf_endpoint=hub.url, ollama_registry=hub.url, one_per_category=False, exclusive=[]
    ) as running:
        monkeypatch.setenv("MODELYARD_URL", running.url)
        monkeypatch.setenv("MODELYARD_HOME", str(home))
        monkeypatch.setenv("COLUMNS", "200")
        yield running


def cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def instances(server: RunningServer, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = server.http.get(f"/api/deployments/{name}").json()["instances"]
    return found


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def test_deploy_from_the_hub_in_one_command_and_answer_through_openai(
    server: RunningServer, hub: FakeHub, ggufs: dict[str, bytes]
) -> None:
    hub.add_hf("org/tiny-GGUF", {"tiny-F32.gguf": ggufs["f32"], "tiny-Q8_0.gguf": ggufs["q8"]}, tags=["gguf"])
    out = cli(
        "deploy", "org/tiny-GGUF:Q8_0", "--name", "tiny", "-r", "2", "--set", "n_ctx=256", "--arg=--metrics"
    )
    assert "imported: tiny" in out
    assert "tiny on llama.cpp: 2/2 instances" in out
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    answer = client.completions.create(model="tiny", prompt="one two", max_tokens=4, temperature=0)
    assert answer.choices[0].text
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 4
    for inst in instances(server, "tiny"):
        argv = cmdline(inst["pid"])
        assert argv[-1] == "--metrics"
        assert argv[argv.index("--ctx-size") + 1] == "256"
    listed = cli("deployments")
    assert "tiny" in listed
    assert "2 serving" in listed
    # deployed again: nothing is fetched twice, the deployment is the same
    again = server.http.post("/api/deployments", json={"ref": "org/tiny-GGUF:Q8_0", "replicas": 2})
    assert again.status_code == 201, again.text
    assert [i["id"] for i in again.json()["deployment"]["instances"]] == [
        i["id"] for i in instances(server, "tiny")
    ]
    assert len(server.http.get("/api/downloads").json()) == 1


def test_a_rolling_edit_under_traffic_fails_no_request(
    server: RunningServer, tiny_models: dict[str, Path]
) -> None:
    r = server.http.post(
        "/api/deployments",
        json={"path": str(tiny_models["tiny-chat"]), "replicas": 2, "settings": {"n_ctx": 256, "threads": 1}},
    )
    assert r.status_code == 201, r.text
    before = {i["id"]: i["pid"] for i in instances(server, "tiny-chat")}
    stop = threading.Event()
    results: list[str] = []

    def traffic() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            while not stop.is_set():
                body = {"model": "tiny-chat", "prompt": "a b c", "max_tokens": 8, "stream": True}
                try:
                    with http.stream("POST", "/v1/completions", json=body) as response:
                        text = "".join(response.iter_lines())
                        ok = response.status_code == 200 and "[DONE]" in text
                        results.append("ok" if ok else f"{response.status_code}: {text[:200]}")
                except httpx.HTTPError as e:
                    results.append(f"error: {e}")

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(1)
    edited = server.http.patch(
        "/api/deployments/tiny-chat", json={"settings": {"n_ctx": 512}, "args": ["--metrics"]}
    )
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert edited.status_code == 200, edited.text
    failed = [r for r in results if r != "ok"]
    assert failed == [], failed[:3]
    assert len(results) > 20
    after = instances(server, "tiny-chat")
    assert len(after) == 2
    assert not {i["id"] for i in after} & set(before)  # each instance replaced
    for inst in after:
        argv = cmdline(inst["pid"])
        assert argv[-1] == "--metrics"
        assert argv[argv.index("--ctx-size") + 1] == "512"
    for pid in before.values():
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    # reload after a settings change: a roll as well
    assert (
        server.http.put("/api/models/tiny-chat/settings", json={"options": {"n_ctx": 384}}).status_code == 200
    )
    out = cli("reload", "tiny-chat")
    assert "2/2 instances" in out
    for inst in instances(server, "tiny-chat"):
        argv = cmdline(inst["pid"])
        assert argv[argv.index("--ctx-size") + 1] == "384"


def test_a_deleted_instance_is_recreated_and_stop_start_keep_the_deployment(
    server: RunningServer, tiny_models: dict[str, Path]
) -> None:
    out = cli(
        "deploy",
        str(tiny_models["tiny-chat"]),
        "-r",
        "2",
        "--set",
        "n_ctx=256",
        "--env",
        "LLAMA_ARG_THREADS=1",
    )
    assert "2/2 instances" in out
    first, second = instances(server, "tiny-chat")
    assert b"LLAMA_ARG_THREADS=1" in Path(f"/proc/{first['pid']}/environ").read_bytes()
    out = cli("deployments", "rm-instance", str(first["id"]))
    assert f"instance {first['id']} replaced by" in out
    now = instances(server, "tiny-chat")
    assert [i["state"] for i in now] == ["running", "running"]
    assert second["id"] in [i["id"] for i in now]
    assert first["id"] not in [i["id"] for i in now]
    cli("deployments", "stop", "tiny-chat")
    shown = server.http.get("/api/deployments/tiny-chat").json()
    assert shown["stopped"] is True
    assert shown["instances"] == []
    assert shown["replicas"] == 2
    r = server.http.post("/v1/completions", json={"model": "tiny-chat", "prompt": "x", "max_tokens": 1})
    assert r.status_code == 409, r.text
    assert "2/2 instances" in cli("deployments", "start", "tiny-chat")
    # its replicas follow its requests from now on, between 1 and 3 (runtime: test_scaling.py)
    assert "2/2 (1-3) instances" in cli("deployments", "edit", "tiny-chat", "--autoscale", "1:3")
    shown = server.http.get("/api/deployments/tiny-chat").json()
    assert shown["autoscale"] == {"least": 1, "most": 3, "wait": 2.0, "idle": 300.0}
    assert "write LEAST:MOST" in cli("deployments", "edit", "tiny-chat", "--autoscale", "3", code=2)
    bad = server.http.patch("/api/deployments/tiny-chat", json={"autoscale": {"least": 4, "most": 3}})
    assert bad.status_code == 400
    cli("deployments", "edit", "tiny-chat", "--autoscale", "off")
    assert server.http.get("/api/deployments/tiny-chat").json()["autoscale"] is None
    cli("deployments", "rm", "tiny-chat")
    assert server.http.get("/api/deployments/tiny-chat").status_code == 404
    assert server.http.get("/api/models/tiny-chat").status_code == 200  # the model stays


def test_engine_arguments_are_checked_against_its_help(
    server: RunningServer, tiny_models: dict[str, Path]
) -> None:
    path = str(tiny_models["tiny-chat"])
    r = server.http.post("/api/deployments", json={"path": path, "args": ["--no-such-flag"]})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["message"] == "llama-server has no flag --no-such-flag"
    assert "llama-server --help" in error["hint"]
    assert server.http.get("/api/deployments").json() == []
    r = server.http.post("/api/deployments", json={"path": path, "settings": {"n_ctx": 256}})
    assert r.status_code == 201, r.text
    r = server.http.patch("/api/deployments/tiny-chat", json={"args": ["--ctx-size", "128", "--sl0ts"]})
    assert r.status_code == 400
    assert "--sl0ts" in r.json()["error"]["message"]
    assert server.http.get("/api/deployments/tiny-chat").json()["args"] == []


def test_two_llama_cpp_versions_side_by_side(server: RunningServer, tiny_models: dict[str, Path]) -> None:
    listed = cli("backends", "ls")
    assert f"version {SECOND}" in listed
    for name, version in (("tiny-chat", None), ("tiny-chat-b", SECOND)):
        r = server.http.post(
            "/api/deployments",
            json={"path": str(tiny_models[name]), "backend_version": version, "settings": {"n_ctx": 256}},
        )
        assert r.status_code == 201, r.text
        assert r.json()["deployment"]["backend_version"] == version
    (a,) = instances(server, "tiny-chat")
    (b,) = instances(server, "tiny-chat-b")
    assert os.readlink(f"/proc/{a['pid']}/exe") == str(llama_server())
    assert os.readlink(f"/proc/{b['pid']}/exe").endswith(f"llama-server-{SECOND}")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    # the tiny models' random weights make random bytes, which 0.3.35's output parser refuses
    # (a 500): steer both to a whole word
    hello = {"267": 100}  # "▁hello" in the tiny vocabulary
    for name in ("tiny-chat", "tiny-chat-b"):
        answer = client.completions.create(
            model=name, prompt="x y", max_tokens=2, temperature=0, logit_bias=hello
        )
        assert answer.choices[0].text == " hello hello"
    r = server.http.patch("/api/deployments/tiny-chat-b", json={"backend_version": "9.9.9"})
    assert r.status_code == 503, r.text
    assert "llama-server 9.9.9 is not installed" in r.json()["error"]["message"]
    r = server.http.patch("/api/deployments/tiny-chat-b", json={"backend_version": ""})  # back to the default
    assert r.status_code == 200, r.text
    (b,) = instances(server, "tiny-chat-b")
    assert os.readlink(f"/proc/{b['pid']}/exe") == str(llama_server())
