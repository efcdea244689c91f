"""Instances: crash mid-stream and restart with backoff, one log per start, unload gives the
memory back, autoload (JIT) and idle unload."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import builders as b
from conftest import RunningServer, serve
from runtime.conftest import add, load
from waiting import eventually

pytestmark = pytest.mark.engine


def test_crash_mid_stream_then_restart(tmp_path: Path, gemma: Path) -> None:
    with serve(tmp_path / "home", restart_backoff=0.5, restart_backoff_max=2) as server:
        add(server, gemma, name="gemma3")
        server.http.put("/api/models/gemma3/settings", json={"options": {"n_ctx": 1024, "threads": 2}})
        (first,) = load(server, "gemma3")["instances"]  # type: ignore[misc]
        body = {"model": "gemma3", "prompt": "One, two, three,", "max_tokens": 400, "stream": True}
        events: list[str] = []
        with (
            httpx.Client(base_url=server.url, timeout=60) as http,
            http.stream("POST", "/v1/completions", json=body) as r,
        ):
            lines = r.iter_lines()
            events.append(next(lines))
            os.kill(first["pid"], signal.SIGKILL)  # the engine dies mid-stream
            events += [line for line in lines if line]
        assert events[0].startswith("data: {")
        assert '"error"' in events[-1]  # the stream ends with an error event, not silently
        assert "stopped while answering" in events[-1]

        def restarted() -> bool:
            (inst,) = server.http.get("/api/instances").json()
            return bool(inst["state"] == "running" and inst["restarts"] == 1)

        eventually(restarted, timeout=60)
        (inst,) = server.http.get("/api/instances").json()
        assert inst["starts"] == 2
        assert inst["pid"] != first["pid"]
        states = [h["state"] for h in inst["history"]]
        assert states[-4:] == ["error", "restarting", "starting", "running"]
        logs = sorted(p.name for p in (tmp_path / "home" / "logs" / "instances").iterdir())
        assert logs == [f"{inst['id']}.1.log", f"{inst['id']}.2.log"]
        # it serves again
        r2 = server.http.post("/v1/completions", json={**body, "stream": False, "max_tokens": 3})
        assert r2.status_code == 200
        # the API reads each start's log, and the latest by default
        first_log = server.http.get(
            f"/api/instances/{inst['id']}/logs", params={"start": 1, "lines": 100000}
        ).text
        assert "--model" in first_log
        # following from the first start goes on into the second start's log
        seen = ""
        params = {"start": 1, "lines": 5, "follow": True}
        with server.http.stream("GET", f"/api/instances/{inst['id']}/logs", params=params) as r:
            for chunk in r.iter_text():
                seen += chunk
                if "--- start 2 ---" in seen:
                    break
        assert "--- start 2 ---" in seen


def anon_rss(pid: int) -> int:
    """Memory the process owns outright (heap: KV cache, compute buffers), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def test_unload_gives_the_memory_back(server: RunningServer, gemma: Path) -> None:
    add(server, gemma, name="gemma3")
    server.http.put("/api/models/gemma3/settings", json={"options": {"n_ctx": 8192, "threads": 2}})
    (inst,) = load(server, "gemma3")["instances"]  # type: ignore[misc]
    server.http.post(
        "/v1/completions", json={"model": "gemma3", "prompt": "Hello", "max_tokens": 4}
    ).raise_for_status()
    (listed,) = server.http.get("/api/instances").json()
    rss = listed["memory"]
    assert rss > 250 * 2**20  # weights (mapped from the file) + what the engine allocated
    # beside what it uses, what the placement claimed for it: the estimate it was placed by
    estimate = server.http.get("/api/models/gemma3/estimate").json()
    assert listed["claimed"] == [{"node": "local", "ram": estimate["ram"]["total"], "vram": []}]
    assert anon_rss(inst["pid"]) > 50 * 2**20
    # CPU use is measured between two looks: high across a generation, near nothing once idle
    server.http.get("/api/instances")  # the first look
    server.http.post(
        "/v1/completions", json={"model": "gemma3", "prompt": "Once", "max_tokens": 96, "ignore_eos": True}
    ).raise_for_status()
    busy = server.http.get("/api/instances").json()[0]["cpu_percent"]

    def idle() -> bool:
        return bool(server.http.get("/api/instances").json()[0]["cpu_percent"] < min(10, busy / 2))

    eventually(idle)  # once what follows a request (slot bookkeeping) is done: well below the busy look
    assert server.http.post("/api/models/gemma3/unload", json={}).status_code == 204
    # the engine's whole process group is gone, and with it every byte it held
    with pytest.raises(ProcessLookupError):
        os.killpg(inst["pid"], 0)
    assert server.http.get("/api/instances").json() == []


def test_autoload_and_idle_unload(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    with serve(tmp_path / "home", idle_unload=1.0) as server:
        add(server, tiny_models["tiny-chat"])
        r = server.http.post("/v1/completions", json={"model": "tiny-chat", "prompt": "x", "max_tokens": 2})
        assert r.status_code == 409  # autoload is off: a clear "not loaded"
        assert "modelyard load tiny-chat" in r.json()["error"]["message"]
        server.http.patch(
            "/api/models/tiny-chat", json={"autoload": True, "aliases": ["tc"]}
        ).raise_for_status()
        r = server.http.post("/v1/completions", json={"model": "tc", "prompt": "x", "max_tokens": 2})
        assert r.status_code == 200, r.text  # loaded on demand, through an alias
        assert r.json()["model"] == "tiny-chat"
        assert server.runtime.is_loaded("tiny-chat")
        # idle for 1 s: unloaded (tests/runtime/test_runtime.py times it on a fake clock)
        eventually(lambda: not server.runtime.is_loaded("tiny-chat"), timeout=15)


def test_engine_that_fails_to_start(server: RunningServer, tmp_path: Path) -> None:
    # a sound GGUF of an architecture llama.cpp does not know: the engine exits while starting
    (path,) = b.write_llama_gguf(tmp_path / "broken.gguf", arch="nonexistent")
    add(server, path)
    r = server.http.post("/api/models/broken/load", json={})
    assert r.status_code == 502
    error = r.json()["error"]
    assert error["code"] == "engine_error"
    assert "exited" in error["message"] or "not ready" in error["message"]
    assert error["hint"]  # the log's tail
    assert server.http.get("/api/instances").json() == []  # nothing half-started stays
    assert server.http.get("/api/health").status_code == 200


def test_deployments_survive_a_server_restart(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    home = tmp_path / "home"
    with serve(home) as server:
        add(server, tiny_models["tiny-chat"])
        (before,) = load(server, "tiny-chat")["instances"]  # type: ignore[misc]
    # the server stopped: so did its engine
    with pytest.raises(ProcessLookupError):
        os.killpg(before["pid"], 0)
    with serve(home) as server:

        def serving() -> bool:
            instances = server.http.get("/api/instances").json()
            return bool(instances and instances[0]["state"] == "running")

        eventually(serving, timeout=60)
        r = server.http.post("/v1/completions", json={"model": "tiny-chat", "prompt": "x", "max_tokens": 2})
        assert r.status_code == 200


def test_file_damaged_after_import_is_caught_before_launch(server: RunningServer, tmp_path: Path) -> None:
    (path,) = b.write_llama_gguf(tmp_path / "cut.gguf")
    add(server, path)
    path.write_bytes(path.read_bytes()[:-32])  # truncated after it was imported
    r = server.http.post("/api/models/cut/load", json={})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "malformed_file"
    assert "truncated" in r.json()["error"]["message"]
    assert server.http.get("/api/instances").json() == []


def test_engine_not_ready_in_time(tmp_path: Path, gemma: Path) -> None:
    with serve(tmp_path / "home", health_timeout=0.05) as server:  # gemma takes longer to load
        add(server, gemma, name="gemma3")
        # a context that fits under either engine (llama-cpp-python's keeps n_ctx x n_vocab logits)
        server.http.put("/api/models/gemma3/settings", json={"options": {"n_ctx": 2048}})
        r = server.http.post("/api/models/gemma3/load", json={})
        assert r.status_code == 502
        assert "was not ready after 0.05 s" in r.json()["error"]["message"]
        assert server.http.get("/api/instances").json() == []


def instance(server: RunningServer) -> dict[str, Any]:
    (inst,) = server.http.get("/api/instances").json()
    return inst  # type: ignore[no-any-return]


def test_requests_waiting_for_an_engine_that_cannot_come_back_get_its_error(tmp_path: Path) -> None:
    (path,) = b.write_llama_gguf(tmp_path / "m" / "moving.gguf")
    with serve(tmp_path / "home", restart_backoff=0.2) as server:
        add(server, path)
        (first,) = load(server, "moving")["instances"]  # type: ignore[misc]
        path.rename(path.with_suffix(".moved"))  # the file goes away, then the engine dies
        os.kill(first["pid"], signal.SIGKILL)
        eventually(lambda: instance(server)["state"] != "running")
        with httpx.Client(base_url=server.url, timeout=60) as http:  # it waits for the restart
            r = http.post("/v1/completions", json={"model": "moving", "prompt": "x", "max_tokens": 2})
        assert r.status_code == 502
        error = r.json()["error"]
        assert error["code"] == "engine_error"
        assert "exited with status" in error["message"]
        assert server.http.get("/api/health").status_code == 200


def test_a_request_right_after_a_crash_waits_for_the_restart(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    with serve(tmp_path / "home", restart_backoff=0.2) as server:
        add(server, tiny_models["tiny-chat"])
        load(server, "tiny-chat")
        body = {"model": "tiny-chat", "prompt": "x", "max_tokens": 2}
        for restarts in (1, 2):
            os.kill(instance(server)["pid"], signal.SIGKILL)
            r = server.http.post("/v1/completions", json=body)  # at once: no 502
            assert r.status_code == 200, r.text
            assert instance(server)["restarts"] == restarts


def test_restart_backoff_starts_over_after_healthy_service(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    with serve(tmp_path / "home", restart_backoff=0.2, restart_reset=1.0) as server:
        add(server, tiny_models["tiny-chat"])
        load(server, "tiny-chat")

        def crash() -> float:
            """The delay of the restart that follows a crash, as the instance's history says."""
            before = instance(server)["restarts"]
            os.kill(instance(server)["pid"], signal.SIGKILL)
            eventually(
                lambda: instance(server)["restarts"] == before + 1 and instance(server)["state"] == "running"
            )
            notes = [h.get("note", "") for h in instance(server)["history"] if h["state"] == "restarting"]
            assert notes[-1].startswith("the engine exited with status -9; restart in")
            return float(re.findall(r"restart in ([0-9.]+) s", notes[-1])[0])

        assert crash() == 0.2
        assert crash() == 0.4  # crashing in a loop: it doubles
        time.sleep(1.2)  # it serves healthily for longer than restart_reset
        assert crash() == 0.2


def test_each_start_of_each_instance_has_its_own_log(
    server: RunningServer, tiny_models: dict[str, Path]
) -> None:
    add(server, tiny_models["tiny-chat"])
    add(server, tiny_models["tiny-chat-b"])
    (a,) = load(server, "tiny-chat")["instances"]  # type: ignore[misc]
    assert server.http.post("/api/models/tiny-chat/unload", json={}).status_code == 204
    (b_,) = load(server, "tiny-chat-b")["instances"]  # type: ignore[misc]
    assert b_["id"] != a["id"]  # ids are never reused
    log_b = server.http.get(f"/api/instances/{b_['id']}/logs", params={"lines": 100000}).text
    assert str(tiny_models["tiny-chat-b"]) in log_b
    assert str(tiny_models["tiny-chat"]) not in log_b  # nothing of another model's log
    assert log_b.count("\n# ") + log_b.startswith("# ") == 1  # one start, one command line


def test_a_failed_load_leaves_the_loaded_model_serving(
    server: RunningServer, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    add(server, tiny_models["tiny-chat"])
    (before,) = load(server, "tiny-chat")["instances"]  # type: ignore[misc]
    (broken,) = b.write_llama_gguf(tmp_path / "broken.gguf", arch="nonexistent")
    add(server, broken)  # a chat model too: loading it would replace tiny-chat
    r = server.http.post("/api/models/broken/load", json={})
    assert r.status_code == 502
    assert [(i["model"], i["pid"]) for i in server.http.get("/api/instances").json()] == [
        ("tiny-chat", before["pid"])
    ]
    body = {"model": "tiny-chat", "prompt": "x", "max_tokens": 2}
    assert server.http.post("/v1/completions", json=body).status_code == 200


def test_autoloading_a_damaged_file_is_a_clear_422(server: RunningServer, tmp_path: Path) -> None:
    (path,) = b.write_llama_gguf(tmp_path / "cut.gguf")
    add(server, path)
    server.http.patch("/api/models/cut", json={"autoload": True}).raise_for_status()
    path.write_bytes(path.read_bytes()[:-32])  # truncated after it was imported
    r = server.http.post("/v1/completions", json={"model": "cut", "prompt": "x", "max_tokens": 2})
    assert r.status_code == 422
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "malformed_file")
    assert "truncated" in error["message"]
