"""Download jobs through a real server: pull, events, pause / resume / cancel, limits, bad input,
a kill -9 of the server halfway, and the import into the library at the end."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import RunningServer, free_port, serve
from fakehub import FakeHub
from waiting import eventually

pytestmark = pytest.mark.slow


MiB = 1 << 20
ENDED = ("completed", "failed", "cancelled")


@pytest.fixture
def server(tmp_path: Path, hub: FakeHub) -> Iterator[RunningServer]:
    with serve(
        tmp_path / "home", hf_endpoint=hub.url, modelscope_endpoint=hub.url, ollama_registry=hub.url
    ) as running:
        yield running


def wait(http: httpx.Client, job: int, until: tuple[str, ...] = ENDED, timeout: float = 60) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        current: dict[str, Any] = http.get(f"/api/downloads/{job}").json()
        return current if current["state"] in until else None

    return eventually(ended, timeout=timeout, what=f"download {job} {' or '.join(until)}")


def wait_bytes(http: httpx.Client, job: int, at_least: int, timeout: float = 30) -> dict[str, Any]:
    def got() -> dict[str, Any] | None:
        current: dict[str, Any] = http.get(f"/api/downloads/{job}").json()
        assert current["state"] not in ENDED, current
        return current if current["bytes_done"] >= at_least else None

    return eventually(got, timeout=timeout, every=0.02, what=f"{at_least} bytes of download {job}")


def pull(http: httpx.Client, **body: Any) -> dict[str, Any]:
    r = http.post("/api/downloads", json=body)
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


def tiny_repo(hub: FakeHub, ggufs: dict[str, bytes]) -> None:
    hub.add_hf(
        "org/tiny-GGUF",
        {
            "README.md": b"# tiny\n",
            "tiny-F32.gguf": ggufs["f32"],
            "tiny-Q8_0.gguf": ggufs["q8"],
            "mmproj-tiny-f16.gguf": ggufs["mmproj"],
        },
        tags=["gguf"],
    )


def test_pull_a_quantization_lands_in_the_library_with_its_projector(
    server: RunningServer, hub: FakeHub, ggufs: dict[str, bytes], tmp_path: Path
) -> None:
    tiny_repo(hub, ggufs)
    repo = server.http.get("/api/hub/files", params={"ref": "org/tiny-GGUF"}).json()
    assert [g["name"] for g in repo["groups"]] == ["Q8_0", "F32", "mmproj", "other"]
    job = pull(server.http, ref="hf.co/org/tiny-GGUF:Q8_0")
    assert sorted(job["files"]) == ["mmproj-tiny-f16.gguf", "tiny-Q8_0.gguf"]
    done = wait(server.http, job["id"])
    assert done["state"] == "completed", done
    assert done["bytes_done"] == done["bytes_total"] == len(ggufs["q8"]) + len(ggufs["mmproj"])
    assert done["files_done"] == 2
    assert done["models"] == ["tiny-Q8_0"]
    model = server.http.get("/api/models/tiny-Q8_0").json()
    assert model["category"] == "multimodal"
    assert model["quantization"] == "Q8_0"
    assert [c["role"] for c in model["components"]] == ["mmproj"]
    assert model["description"].startswith("hf:org/tiny-GGUF@")
    dest = tmp_path / "home/models/hf/org/tiny-GGUF" / hub.hf["org/tiny-GGUF"].sha
    assert Path(model["path"]) == dest / "tiny-Q8_0.gguf"
    assert (
        hashlib.sha256((dest / "tiny-Q8_0.gguf").read_bytes()).hexdigest()
        == hashlib.sha256(ggufs["q8"]).hexdigest()
    )
    assert not (dest / "tiny-F32.gguf").exists()
    assert not (tmp_path / "home/downloads" / str(job["id"])).exists()  # partial files and record gone


def test_pull_from_ollama_and_modelscope(
    server: RunningServer, hub: FakeHub, ggufs: dict[str, bytes]
) -> None:
    hub.add_ollama(
        "library/tiny:latest", {"model": ggufs["q8"], "template": b"{{ .Prompt }}", "params": b"{}"}
    )
    hub.add_ms("qwen/tiny-GGUF", {"tiny-F32.gguf": ggufs["f32"], "configuration.json": b"{}"})
    ollama = wait(server.http, pull(server.http, ref="ollama:tiny")["id"])
    assert ollama["state"] == "completed", ollama
    assert ollama["models"] == ["tiny-latest"]
    ms = wait(server.http, pull(server.http, ref="ms:qwen/tiny-GGUF")["id"])
    assert ms["state"] == "completed", ms
    assert ms["models"] == ["tiny-F32"]
    names = {m["name"]: m for m in server.http.get("/api/models").json()}
    assert names["tiny-latest"]["category"] == "chat"
    assert names["tiny-F32"]["format"] == "gguf"


def test_a_lora_repo_binds_to_the_base_it_names(
    server: RunningServer, hub: FakeHub, ggufs: dict[str, bytes]
) -> None:
    tiny_repo(hub, ggufs)
    hub.add_hf("org/tiny-lora", {"tiny-lora.gguf": ggufs["lora"]})
    wait(server.http, pull(server.http, ref="org/tiny-GGUF:F32")["id"])
    r = server.http.post("/api/downloads", json={"ref": "org/tiny-lora", "base": "no-such-model"})
    assert r.status_code == 404  # refused before anything is fetched
    done = wait(server.http, pull(server.http, ref="org/tiny-lora", base="tiny-F32")["id"])
    assert done["state"] == "completed", done
    assert done["models"] == ["tiny-F32:tiny-lora"]
    base = server.http.get("/api/models/tiny-F32").json()
    assert [a["name"] for a in base["adapters"]] == ["tiny-lora"]


def test_progress_events_stream_until_done(server: RunningServer, hub: FakeHub) -> None:
    data = os.urandom(3 * MiB)
    hub.add_hf("org/slow", {"w.gguf": data})
    hub.rate = 2 * MiB
    seen: list[dict[str, Any]] = []
    with (
        httpx.Client(base_url=server.url, timeout=httpx.Timeout(10, read=30)) as http,
        http.stream("GET", "/api/downloads/events") as events,
    ):
        lines = events.iter_lines()
        job = pull(server.http, ref="org/slow", all=True)
        for line in lines:
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if event["id"] == job["id"]:
                seen.append(event)
                if event["state"] in ENDED:
                    break
    assert seen[-1]["state"] == "completed"
    running = [e for e in seen if e["state"] == "running"]
    assert len(running) >= 2
    done = [e["bytes_done"] for e in seen]
    assert done == sorted(done)
    assert any(0 < e["bytes_done"] < len(data) and e["speed"] > 0 and e["eta"] is not None for e in running)


def test_pause_resume_and_cancel(server: RunningServer, hub: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(4 * MiB)
    hub.add_hf("org/slow", {"w.gguf": data})
    hub.add_hf("org/other", {"x.gguf": os.urandom(4 * MiB)})
    hub.rate = 2 * MiB
    job = pull(server.http, ref="org/slow", all=True)
    wait_bytes(server.http, job["id"], MiB)
    paused = server.http.post(f"/api/downloads/{job['id']}/pause").json()
    assert paused["state"] == "paused"
    time.sleep(0.5)
    still = server.http.get(f"/api/downloads/{job['id']}").json()
    assert still["state"] == "paused"
    assert still["bytes_done"] == paused["bytes_done"] >= MiB
    assert server.http.post(f"/api/downloads/{job['id']}/resume").json()["state"] == "queued"
    hub.rate = None
    done = wait(server.http, job["id"])
    assert done["state"] == "completed", done
    assert hub.served[hashlib.sha256(data).hexdigest()] <= len(data) + MiB  # it went on, not again

    other = pull(server.http, ref="org/other", all=True)
    hub.rate = 2 * MiB
    wait_bytes(server.http, other["id"], 256 << 10)
    assert (tmp_path / "home/downloads" / str(other["id"])).exists()
    assert server.http.post(f"/api/downloads/{other['id']}/cancel").json()["state"] == "cancelled"
    assert not (tmp_path / "home/downloads" / str(other["id"])).exists()
    assert server.http.delete(f"/api/downloads/{other['id']}").status_code == 204
    assert [j["id"] for j in server.http.get("/api/downloads").json()] == [job["id"]]


def test_downloads_beyond_the_limit_wait(tmp_path: Path, hub: FakeHub) -> None:
    hub.add_hf("org/a", {"a.gguf": os.urandom(2 * MiB)})
    hub.add_hf("org/b", {"b.gguf": os.urandom(2 * MiB)})
    hub.rate = 2 * MiB
    with serve(tmp_path / "home", hf_endpoint=hub.url, max_downloads=1) as server:
        a = pull(server.http, ref="org/a", all=True)
        b = pull(server.http, ref="org/b", all=True)
        wait_bytes(server.http, a["id"], 1)
        assert server.http.get(f"/api/downloads/{b['id']}").json()["state"] == "queued"
        hub.rate = None
        assert wait(server.http, a["id"])["state"] == "completed"
        assert wait(server.http, b["id"])["state"] == "completed"


def test_bad_requests_get_clear_errors_and_the_server_stays_up(
    server: RunningServer, hub: FakeHub, ggufs: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_repo(hub, ggufs)
    http = server.http
    missing = http.post("/api/downloads", json={"ref": "org/does-not-exist"})
    assert missing.status_code == 404
    assert "no repo" in missing.json()["error"]["message"]
    bad = http.post("/api/downloads", json={"ref": "org/../x"})
    assert bad.status_code == 400
    quant = http.post("/api/downloads", json={"ref": "org/tiny-GGUF:Q2_K"})
    assert quant.status_code == 404
    assert "F32, Q8_0" in quant.json()["error"]["hint"] or "Q8_0, F32" in quant.json()["error"]["hint"]
    search = http.get("/api/hub/search", params={"source": "ollama", "q": "x"})
    assert search.status_code == 400
    relative = http.post("/api/downloads", json={"ref": "org/tiny-GGUF:Q8_0", "directory": "models"})
    assert relative.status_code == 400
    assert "absolute" in relative.json()["error"]["message"]
    a_file = server.app.state.settings.home / "catalog.db"
    not_folder = http.post("/api/downloads", json={"ref": "org/tiny-GGUF:Q8_0", "directory": str(a_file)})
    assert not_folder.status_code == 400
    assert "not a folder" in not_folder.json()["error"]["message"]

    class Full:
        free = 1000

    monkeypatch.setattr(shutil, "disk_usage", lambda _path: Full())
    full = http.post("/api/downloads", json={"ref": "org/tiny-GGUF:Q8_0"})
    assert full.status_code == 409
    assert "GiB free" in full.json()["error"]["message"]
    assert http.get("/api/downloads").json() == []  # nothing half-made stays behind
    assert http.get("/api/health").status_code == 200


def test_names_a_hub_gives_are_checked_before_they_touch_a_path(
    server: RunningServer, hub: FakeHub, ggufs: dict[str, bytes], tmp_path: Path
) -> None:
    home = server.app.state.settings.home
    hub.add_hf("org/bad-rev", {"m-F32.gguf": ggufs["f32"]}, sha="../../../../../tmp/escaped")
    hub.add_hf("org/bad-id", {"m-F32.gguf": ggufs["f32"]}).id = "org/../../../escaped"
    for ref, said in (("org/bad-rev", "revision"), ("org/bad-id", "repo")):
        r = server.http.post("/api/downloads", json={"ref": ref})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "unsafe_path"
        assert f"the hub named {'a' if said == 'revision' else 'its'} {said}" in error["message"]
        files = server.http.get("/api/hub/files", params={"ref": ref})
        assert files.json()["error"]["code"] == "unsafe_path"
    assert server.http.get("/api/downloads").json() == []
    assert not (home.parent / "escaped").exists()
    assert not Path("/tmp/escaped").exists()
    # a save folder that no file system could hold is refused before the hub is asked
    asked = len(hub.requests)
    nul = server.http.post("/api/downloads", json={"ref": "org/bad-rev", "directory": f"{tmp_path}/a\u0000b"})
    assert nul.status_code == 400
    assert "NUL" in nul.json()["error"]["message"]
    assert len(hub.requests) == asked


def test_a_download_survives_a_kill_9_of_the_server(tmp_path: Path, hub: FakeHub) -> None:
    data = os.urandom(12 * MiB)
    hub.add_hf("org/big", {"big.gguf": data})
    hub.rate = 4 * MiB
    port = free_port()
    env = {
        **os.environ,
        "MODELYARD_HOME": str(tmp_path / "home"),
        "MODELYARD_PORT": str(port),
        "HF_ENDPOINT": hub.url,
    }
    url = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "modelyard.cli.main", "serve"], env=env)

        def up() -> bool:
            try:
                httpx.get(f"{url}/api/health", timeout=1)
                return True
            except httpx.TransportError:
                assert proc.poll() is None, "the server exited"
                return False

        eventually(up, timeout=30, every=0.1, what="the server answering")
        return proc

    proc = start()
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            job = pull(http, ref="org/big", all=True)
            wait_bytes(http, job["id"], len(data) // 2)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            before = hub.served[hashlib.sha256(data).hexdigest()]
            assert before < len(data)
            proc = start()
            done = wait(http, job["id"])
        assert done["state"] == "completed", done
        assert (Path(done["destination"]) / "big.gguf").read_bytes() == data
        # Only what the record had not yet seen is fetched twice: at most half a second's worth.
        assert hub.served[hashlib.sha256(data).hexdigest()] <= len(data) + 3 * MiB
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_download_goes_on_after_the_server_stops_and_starts(tmp_path: Path, hub: FakeHub) -> None:
    data = os.urandom(4 * MiB)
    hub.add_hf("org/slow", {"w.gguf": data})
    hub.rate = 2 * MiB
    with serve(tmp_path / "home", hf_endpoint=hub.url) as server:
        job = pull(server.http, ref="org/slow", all=True)
        wait_bytes(server.http, job["id"], MiB)
    hub.rate = None
    with serve(tmp_path / "home", hf_endpoint=hub.url) as server:
        done = wait(server.http, job["id"])
    assert done["state"] == "completed", done
    assert (Path(done["destination"]) / "w.gguf").read_bytes() == data
    assert hub.served[hashlib.sha256(data).hexdigest()] <= len(data) + MiB
