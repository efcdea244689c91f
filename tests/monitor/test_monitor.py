"""The resource monitor on a real server: current values, history, the live stream, GPUs (none
here, so no GPU section), and unloading under memory pressure."""

from __future__ import annotations

import json
from pathlib import Path

import psutil

from conftest import serve
from modelyard.monitor import gpus
from runtime.conftest import add, load
from waiting import eventually


def test_current_history_stream(tmp_path: Path) -> None:
    with serve(tmp_path / "home", monitor_interval=0.1) as server:
        now = server.http.get("/api/monitor").json()
        assert 0 <= now["cpu_percent"] <= 100
        assert now["memory_total"] == psutil.virtual_memory().total
        assert 0 < now["memory_used"] < now["memory_total"]
        if not gpus.detect():
            assert "gpus" not in now  # no GPU card when there is no GPU
        eventually(lambda: len(server.http.get("/api/monitor/history", params={"seconds": 60}).json()) >= 3)
        with server.http.stream("GET", "/api/monitor/stream") as r:
            events = []
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                if len(events) == 2:
                    break
        assert events[1]["at"] > events[0]["at"]


def test_memory_pressure_unloads_the_idle_model(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    # a threshold every machine is above: pressure at once
    with serve(
        tmp_path / "home", monitor_interval=0.2, memory_pressure=0.001, pressure_unload=True
    ) as server:
        add(server, tiny_models["tiny-chat"])
        load(server, "tiny-chat")
        eventually(lambda: not server.runtime.is_loaded("tiny-chat"), timeout=20)
        events = server.http.get("/api/monitor/events").json()
        kinds = {e["kind"] for e in events}
        assert {"memory_pressure", "unloaded"} <= kinds
        unloaded = [e["message"] for e in events if e["kind"] == "unloaded"]
        assert "unloaded 'tiny-chat', the least recently used idle model" in unloaded[0]


def test_pressure_unload_can_be_turned_off(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    with serve(
        tmp_path / "home", monitor_interval=0.2, memory_pressure=0.001, pressure_unload=False
    ) as server:
        add(server, tiny_models["tiny-chat"])
        load(server, "tiny-chat")

        def pressure_seen(times: int) -> bool:
            events = server.http.get("/api/monitor/events").json()
            return sum(e["kind"] == "memory_pressure" for e in events) >= times

        # samples are handled one after the other: once a second pressure event is recorded, the
        # first one has been acted on (or, as here, not)
        eventually(lambda: pressure_seen(2))
        assert server.runtime.is_loaded("tiny-chat")
        assert not any(e["kind"] == "unloaded" for e in server.http.get("/api/monitor/events").json())


def test_static_gpu_facts_from_sysfs(tmp_path: Path) -> None:
    card = tmp_path / "card0" / "device"
    card.mkdir(parents=True)
    (card / "vendor").write_text("0x1002\n")
    (card / "mem_info_vram_total").write_text(str(16 << 30))
    (tmp_path / "card0-HDMI-A-1").mkdir()
    intel = tmp_path / "card1" / "device"
    intel.mkdir(parents=True)
    (intel / "vendor").write_text("0x8086\n")
    found = gpus.others(tmp_path)
    assert [(g.vendor, g.memory_total, g.live) for g in found] == [
        ("AMD", 16 << 30, False),
        ("Intel", None, False),
    ]


def test_vulkan_is_offered_only_for_a_real_gpus_driver(tmp_path: Path) -> None:
    from modelyard.monitor.gpus import vulkan_drivers

    icd, dri = tmp_path / "icd.d", tmp_path / "dri"
    icd.mkdir()
    for name in ("lvp_icd.x86_64.json", "radeon_icd.x86_64.json"):
        (icd / name).write_text("{}")
    assert vulkan_drivers((icd,), dri) == []  # Mesa's manifests, but no GPU
    dri.mkdir()
    (dri / "renderD128").write_text("")
    assert vulkan_drivers((icd,), dri) == ["radeon_icd.x86_64"]  # lavapipe never counts
    (icd / "radeon_icd.x86_64.json").unlink()
    assert vulkan_drivers((icd,), dri) == []
