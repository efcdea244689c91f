"""Servers that already run, behind the gateway: a llama-server the test starts (with its own
API key) registered with `modelyard import --url`, answered through /v1 with the openai client,
shown in ps with its health; and a TGI server that has only /generate (a stand-in, TGI cannot
run here), whose completions the gateway translates."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from click.testing import CliRunner

from conftest import RunningServer, free_port, llama_server, serve
from fake_tgi import FakeTgi
from modelyard.cli.main import app
from modelyard.runtime import local
from waiting import eventually

pytestmark = pytest.mark.engine


KEY = "remote-secret"


def cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def started(tiny_models: dict[str, Path]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """llama-server, started as someone else would, with a key of its own."""
    binary = llama_server()
    assert binary is not None, "scripts/test sets MODELYARD_LLAMA_SERVER"
    port = free_port()
    argv = [str(binary), "--model", str(tiny_models["tiny-chat"]), "--port", str(port), "--ctx-size", "256",
            "--alias", "their-tiny", "--api-key", KEY, "--no-webui"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    monkeypatch.setattr(local, "REMOTE_EVERY", 0.2)  # its health, looked at often
    with serve(tmp_path / "home", restart_backoff=0.5) as running:
        monkeypatch.setenv("MODELYARD_URL", running.url)
        monkeypatch.setenv("COLUMNS", "200")
        yield running


@pytest.fixture
def remote(started: tuple[str, subprocess.Popen[bytes]]) -> str:
    return started[0]


def test_a_running_server_behind_the_gateway(server: RunningServer, remote: str) -> None:
    out = cli("import", "--url", remote, "--api-key", "wrong", code=1)
    assert "refused the key" in out
    out = cli("import", "--url", remote, "--api-key", KEY, "--name", "far")
    assert "registered far: their-tiny at" in out
    shown = server.http.get("/api/models/far").json()
    assert shown["format"] == "remote"
    assert shown["facts"]["api_key"] == "***"  # kept, never shown
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    assert "far" in [m.id for m in client.models.list().data]
    # autoload: it connects; the tiny model's end-of-text may come at any token: asked past it
    answer = client.completions.create(
        model="far", prompt="one two", max_tokens=3, extra_body={"ignore_eos": True}
    )
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 3
    chunks = list(client.completions.create(model="far", prompt="one two", max_tokens=3, stream=True))
    assert chunks
    (inst,) = server.http.get("/api/instances").json()
    assert inst["url"] == remote
    assert inst["state"] == "running"
    assert inst["pid"] is None  # nothing started here
    ps = cli("ps")
    assert "far" in ps
    assert "running" in ps


def test_an_external_server_that_goes_away_leaves_the_rotation(
    server: RunningServer, started: tuple[str, subprocess.Popen[bytes]]
) -> None:
    remote, proc = started
    cli("import", "--url", remote, "--api-key", KEY, "--name", "far")
    r = server.http.post("/api/models/far/load", json={})
    assert r.status_code == 200, r.text
    assert server.http.get("/api/instances").json()[0]["state"] == "running"
    proc.terminate()  # the server goes away
    eventually(
        lambda: server.http.get("/api/instances").json()[0]["state"] != "running",
        every=0.2,
        what="the gone server out of the rotation",
    )
    r = server.http.post("/v1/completions", json={"model": "far", "prompt": "x", "max_tokens": 1}, timeout=5)
    assert r.status_code in (502, 503, 504), r.text


def test_a_tgi_server_with_only_generate(server: RunningServer) -> None:
    tgi = FakeTgi()
    url = tgi.start()
    try:
        out = cli("import", "--url", url)
        assert "registered tgi-model" in out
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        answer = client.completions.create(
            model="tgi-model", prompt="say", max_tokens=3, temperature=0.5, stop=["."]
        )
        assert answer.choices[0].text == "word word word"
        assert answer.choices[0].finish_reason == "length"
        assert answer.usage is not None
        assert answer.usage.completion_tokens == 3
        assert tgi.seen[-1] == {"inputs": "say", "parameters": {"max_new_tokens": 3, "details": True, "do_sample": True,
                                                               "temperature": 0.5, "stop": ["."]}}  # fmt: skip
        chunks = list(client.completions.create(model="tgi-model", prompt="say", max_tokens=4, stream=True))
        assert "model" not in tgi.seen[-1]  # TGI's own API has no such field
        assert "".join(c.choices[0].text for c in chunks) == " word word word word"
        assert chunks[-1].choices[0].finish_reason == "length"
        r = server.http.post(
            "/v1/chat/completions",
            json={"model": "tgi-model", "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.status_code == 400  # TGI's own API has no chat: it says so
    finally:
        tgi.stop()
