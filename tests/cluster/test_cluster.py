"""The cluster on Ray: three workers on this machine (ray.cluster_utils), real llama-server
engines placed on them by the scheduler, through the gateway with the official openai client."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import ray
from click.testing import CliRunner
from openai import OpenAI

import builders as b
from cluster.conftest import ray_cluster
from conftest import RunningServer, free_port, llama_server, serve
from modelyard.cli.main import app
from runtime.conftest import add, load
from waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.engine]
GiB = 1 << 30
MiB = 1 << 20


WORKERS = {"w1": ("a", 2), "w2": ("b", 1), "w3": ("b", 0), "w4": ("c", 0)}  # zone, GPUs; w4 joins later


def join(c: Any, name: str) -> None:
    """A worker as `modelyard worker join` makes one: its name and labels, 4 GiB of RAM for
    engines, 8 GiB per GPU."""
    zone, gpus = WORKERS[name]
    resources = {"modelyard_ram": 4096.0, **{f"modelyard_vram_gpu{i}": 8192.0 for i in range(gpus)}}
    labels = {"modelyard/worker": name, "zone": zone}
    c.workers[name] = c.add_node(
        node_ip_address="127.0.0.1", num_cpus=2, num_gpus=gpus, labels=labels, resources=resources
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A head that runs nothing and three workers: w1 (zone a, two 8 GiB GPUs), w2 (zone b, one
    8 GiB GPU), w3 (zone b, CPU only); each offers 4 GiB of RAM to engines. A node that stops
    answering is dead after 3 missed health checks a second apart."""
    checks = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}
    with ray_cluster(tmp_path_factory.mktemp("nodes"), **checks) as c:
        c.workers = {}  # type: ignore[attr-defined]
        for name in ("w1", "w2", "w3"):
            join(c, name)
        c.wait_for_nodes()
        yield c


@pytest.fixture
def server(cluster: Any, tmp_path: Path) -> Iterator[RunningServer]:
    with serve(tmp_path / "home", cluster=cluster.address, one_per_category=False, exclusive=[]) as running:
        yield running


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-chat.gguf"
    b.write_llama_gguf(path, chat_template=b.CHAT_TEMPLATE)
    return path


def instances(server: RunningServer) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = server.http.get("/api/instances").json()
    return found


def nodes_of(server: RunningServer) -> list[str]:
    return sorted(i["node"] for i in instances(server))


def test_spread_binpack_selector_and_a_chosen_gpu(server: RunningServer, tiny: Path) -> None:
    add(server, tiny, name="tiny")
    server.http.put("/api/models/tiny/settings", json={"options": {"n_ctx": 256, "cpu_only": True}})
    load(server, "tiny", replicas=3)
    assert nodes_of(server) == ["w1", "w2", "w3"]  # spread, the default
    load(server, "tiny", replicas=3, placement="binpack")  # a roll: one instance at a time
    assert len(set(nodes_of(server))) == 1
    load(server, "tiny", replicas=2, placement="spread", selector={"zone": "b"})
    assert nodes_of(server) == ["w2", "w3"]
    with OpenAI(base_url=server.url + "/v1", api_key="none") as client:
        answer = client.completions.create(model="tiny", prompt="hello", max_tokens=4, temperature=0)
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0

    server.http.put("/api/models/tiny/settings", json={"options": {"n_ctx": 256, "cpu_only": False}})
    load(server, "tiny", replicas=1, selector={}, gpus=["w1:1"])
    (inst,) = instances(server)
    assert inst["node"] == "w1"
    assert psutil.Process(inst["pid"]).environ()["CUDA_VISIBLE_DEVICES"] == "1"
    # its log, kept on its worker, read back through the API
    logs = server.http.get(f"/api/instances/{inst['id']}/logs").text
    assert "llama-server" in logs or "--model" in logs


def test_a_dead_worker_is_replaced_and_leaves_no_engine(
    cluster: Any, server: RunningServer, tiny: Path
) -> None:
    add(server, tiny, name="tiny")
    server.http.put("/api/models/tiny/settings", json={"options": {"n_ctx": 256, "cpu_only": True}})
    load(server, "tiny", replicas=1, selector={"zone": "b"})
    (inst,) = instances(server)
    victim = inst["node"]
    pid = inst["pid"]
    cluster.remove_node(cluster.workers[victim])
    start = time.monotonic()
    while time.monotonic() - start < 30:
        found = instances(server)
        if found and found[0]["state"] == "running" and found[0]["node"] != victim:
            break
        time.sleep(0.25)
    else:
        raise AssertionError(f"not placed again: {instances(server)}")
    took = time.monotonic() - start
    assert took < 30
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    r = server.http.post("/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 2})
    assert r.status_code == 200, r.text
    print(f"placed again on {instances(server)[0]['node']} {took:.1f} s after {victim} was removed")

    gone = {w["name"]: w["alive"] for w in server.http.get("/api/workers").json()}
    assert gone[victim] is False
    join(cluster, victim)  # it comes back: alive again, and it takes work again
    cluster.wait_for_nodes()
    back = {w["name"]: w["alive"] for w in server.http.get("/api/workers").json()}
    assert back == {"w1": True, "w2": True, "w3": True}
    load(server, "tiny", replicas=1, selector={"zone": "b"}, placement="spread")
    load(server, "tiny", replicas=2)
    assert victim in nodes_of(server)


def test_workers_listed_and_labelled(
    server: RunningServer, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = {w["name"]: w for w in server.http.get("/api/workers").json()}
    assert sorted(found) == ["w1", "w2", "w3"]  # the head runs nothing: not a worker
    assert found["w1"]["labels"] == {"zone": "a"}
    assert [(g["index"], g["vram_total"]) for g in found["w1"]["gpus"]] == [(0, 8 * GiB), (1, 8 * GiB)]
    assert found["w3"]["gpus"] == []
    assert found["w2"]["ram_total"] == 4 * GiB  # what it offers engines, not the machine's
    # llama-server's binary and the Python backends' interpreter are on every worker here
    assert {"llama.cpp", "transformers", "llama-cpp-python"} <= set(found["w2"]["backends"])

    monkeypatch.setenv("MODELYARD_URL", server.url)
    monkeypatch.setenv("COLUMNS", "200")
    cli = CliRunner()
    out = cli.invoke(app, ["workers", "label", "w3", "disk=ssd"])
    assert out.exit_code == 0, out.output
    assert "w3: zone=b,disk=ssd" in out.output
    add(server, tiny, name="tiny")
    server.http.put("/api/models/tiny/settings", json={"options": {"n_ctx": 256, "cpu_only": True}})
    load(server, "tiny", replicas=1, selector={"disk": "ssd"})  # people's label, matched
    assert nodes_of(server) == ["w3"]
    table = cli.invoke(app, ["workers"]).output
    assert "w3" in table
    assert "disk=ssd" in table
    line = next(row for row in table.splitlines() if row.startswith("w3"))
    assert str(instances(server)[0]["id"]) in line.split()[-1]
    assert cli.invoke(app, ["workers", "label", "w3", "disk="]).exit_code == 0
    assert "disk" not in {k for w in server.http.get("/api/workers").json() for k in w["labels"]}


def test_a_drain_under_streaming_traffic_moves_every_instance_and_fails_no_request(
    cluster: Any, server: RunningServer, tiny: Path
) -> None:
    add(server, tiny, name="tiny")
    server.http.put("/api/models/tiny/settings", json={"options": {"n_ctx": 256, "cpu_only": True}})
    load(server, "tiny", replicas=2)
    assert nodes_of(server) == ["w1", "w2"]
    # what each instance's placement claimed is what Ray holds of the workers' memory
    assert ray.is_initialized()  # the server runs in this process, a driver of the cluster
    held, left = ray.cluster_resources(), ray.available_resources()
    claimed = [c for i in instances(server) for c in i["claimed"]]
    assert sorted(c["node"] for c in claimed) == ["w1", "w2"]
    assert all(c["ram"] > 0 for c in claimed)
    assert held["modelyard_ram"] - left.get("modelyard_ram", 0) == sum(-(-c["ram"] // MiB) for c in claimed)

    failures: list[BaseException] = []
    answered = 0
    stop = threading.Event()

    def traffic() -> None:  # streaming requests back to back until told to stop
        nonlocal answered
        with OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0) as client:
            while not stop.is_set():
                try:
                    stream = client.completions.create(
                        model="tiny", prompt="count", max_tokens=12, temperature=0, stream=True
                    )
                    assert [c for c in stream]
                    answered += 1
                except Exception as e:  # every failure counts
                    failures.append(e)

    users = [threading.Thread(target=traffic) for _ in range(3)]
    for u in users:
        u.start()
    try:
        eventually(lambda: answered >= 6, timeout=60, what="traffic")
        r = server.http.post("/api/workers/w1/drain", timeout=300)
        assert r.status_code == 200, r.text
        drained = r.json()
        before = answered
        eventually(lambda: answered >= before + 6, timeout=60, what="traffic after the drain")
    finally:
        stop.set()
        for u in users:
            u.join()
    assert failures == []
    (moved,) = drained["moved"]
    assert (drained["stayed"], drained["worker"]["drained"]) == ([], True)
    assert moved["worker"] == "w3"  # spread: the worker without one
    assert nodes_of(server) == ["w2", "w3"]
    print(f"{answered} streams answered, none failed, while w1 drained")

    found = server.http.post("/api/deployments/check", json={"model": "tiny", "replicas": 3}).json()
    assert (found["placed"], found["fits"]) == (3, True)  # two fit on w2 and w3 each
    assert {w["worker"]: w["kind"] for w in found["workers"]} == {"w1": "drained", "w2": None, "w3": None}
    found = server.http.post(
        "/api/deployments/check", json={"model": "tiny", "selector": {"zone": "a"}}
    ).json()  # only w1 is in zone a
    assert (found["placed"], found["fits"]) == (0, False)
    assert found["reason"].endswith(
        "2 nodes left out by the selector zone=a; 1 node left out drained for maintenance"
    )
    assert {w["worker"]: w["kind"] for w in found["workers"]} == {
        "w1": "drained", "w2": "selector", "w3": "selector",
    }  # fmt: skip
    found = server.http.post("/api/deployments/check", json={"model": "tiny", "gpus": ["w2:0"]}).json()
    assert found["fits"] is True  # the chosen GPU's worker takes it; the others say why not
    assert {w["worker"]: (w["kind"], w["reason"]) for w in found["workers"]} == {
        "w1": ("drained", "drained for maintenance"),
        "w2": (None, None),
        "w3": ("gpus", "none of the chosen GPUs is there"),
    }
    assert server.http.post("/api/workers/w1/undrain").json()["drained"] is False
    load(server, "tiny", replicas=3)
    assert nodes_of(server) == ["w1", "w2", "w3"]


def test_a_server_killed_leaves_no_engine_behind(cluster: Any, tiny: Path, tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    env = {**os.environ, "MODELYARD_HOME": str(home), "MODELYARD_PORT": str(port)}
    env["MODELYARD_CLUSTER"] = cluster.address
    if llama_server() is not None:
        env["MODELYARD_LLAMA_SERVER"] = str(llama_server())
    first = subprocess.Popen([sys.executable, "-m", "modelyard.cli.main", "serve"], env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            wait_for_health(http, first)
            http.post("/api/models", json={"path": str(tiny), "name": "tiny"}).raise_for_status()
            options = {"options": {"n_ctx": 256, "cpu_only": True}}
            http.put("/api/models/tiny/settings", json=options).raise_for_status()
            (old,) = http.post("/api/models/tiny/load", json={}).raise_for_status().json()["instances"]
    finally:
        first.kill()  # SIGKILL: it stops nothing
        first.wait()
    assert psutil.pid_exists(old["pid"])  # its engine lives on in its actor
    with serve(home, cluster=cluster.address) as second:
        start = time.monotonic()
        while time.monotonic() - start < 30 and [i["state"] for i in instances(second)] != ["running"]:
            time.sleep(0.25)
        (new,) = instances(second)  # the deployment is brought back, once
        assert new["state"] == "running"
        assert new["pid"] != old["pid"]
        gone = (
            not psutil.pid_exists(old["pid"]) or psutil.Process(old["pid"]).status() == psutil.STATUS_ZOMBIE
        )
        assert gone
        r = second.http.post("/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 2})
        assert r.status_code == 200, r.text


def wait_for_health(http: httpx.Client, proc: subprocess.Popen[bytes]) -> None:
    def up() -> bool:
        try:
            http.get("/api/health", timeout=1)
            return True
        except httpx.TransportError:
            assert proc.poll() is None, "the server exited"
            return False

    eventually(up, timeout=60, every=0.1, what="the server's start")


def test_what_fits_nowhere_waits_until_a_worker_joins(
    cluster: Any, server: RunningServer, tiny: Path
) -> None:
    add(server, tiny, name="tiny")
    server.http.put("/api/models/tiny/settings", json={"options": {"n_ctx": 256, "cpu_only": True}})
    r = server.http.post("/api/models/tiny/load", json={"selector": {"zone": "c"}})
    assert r.status_code == 202, r.text  # accepted: pending, not refused
    (inst,) = r.json()["instances"]
    assert inst["state"] == "pending"
    assert (
        inst["error"] == "'tiny' does not fit: no node may take it; 3 nodes left out by the selector zone=c"
    )
    join(cluster, "w4")  # a worker in zone c joins: the instance starts there
    start = time.monotonic()
    while time.monotonic() - start < 30 and instances(server)[0]["state"] != "running":
        time.sleep(0.25)
    took = time.monotonic() - start
    assert instances(server)[0]["node"] == "w4", instances(server)
    r = server.http.post("/v1/completions", json={"model": "tiny", "prompt": "hi", "max_tokens": 2})
    assert r.status_code == 200, r.text
    print(f"serving on w4 {took:.1f} s after it joined")
    server.http.post("/api/models/tiny/unload", json={})
    cluster.remove_node(cluster.workers.pop("w4"))  # last in the module: others count three workers


# A worker node as join() makes one (ray.cluster_utils' way), in a process of its own: w5, zone d.
ALONE = """
import sys, time
import ray._private.node, ray._private.parameter
params = ray._private.parameter.RayParams(
    node_ip_address="127.0.0.1", num_cpus=2, num_gpus=0, object_store_memory=150 << 20,
    min_worker_port=0, max_worker_port=0, gcs_address=sys.argv[1], include_log_monitor=False,
    node_manager_port=0, labels={"modelyard/worker": "w5", "zone": "d"}, resources={"modelyard_ram": 4096.0},
)
params.dashboard_agent_listen_port = None
ray._private.node.Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
while True:
    time.sleep(3600)
"""


def test_a_path_only_a_worker_holds_is_inspected_and_deployed_there(
    cluster: Any, server: RunningServer, tiny: Path, tmp_path: Path
) -> None:
    """w5 joins in a mount namespace of its own, where a folder holds the model: neither the
    server nor the other workers can read that path. The import inspects it on w5, the estimate
    reads its header there, and the deployment runs there."""
    folder = Path(tempfile.mkdtemp(prefix="modelyard-only-w5-"))  # empty here, for good
    only = folder / tiny.name
    node = [sys.executable, "-c", ALONE, cluster.address]
    script = f"mount -t tmpfs none {folder} && cp {tiny} {folder}/ && exec {shlex.join(node)}"
    w5 = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        names = lambda: {w["name"] for w in server.http.get("/api/workers").json() if w["alive"]}  # noqa: E731
        eventually(lambda: "w5" in names(), timeout=60, every=0.5, what="w5 joined")
        assert not only.exists()
        r = server.http.post("/api/models", json={"path": str(only), "name": "alone"})
        assert r.status_code == 201, r.text
        model = r.json()
        assert (model["format"], model["architecture"], model["facts"]["found_on"]) == ("gguf", "llama", "w5")
        server.http.put("/api/models/alone/settings", json={"options": {"n_ctx": 256, "cpu_only": True}})
        found = server.http.post("/api/deployments/check", json={"model": "alone"}).json()
        assert {w["worker"]: w["kind"] for w in found["workers"]} == {
            "w1": "files", "w2": "files", "w3": "files", "w5": None,
        }  # fmt: skip
        assert found["workers"][0]["reason"] == f"the model's files are not there ({only})"
        load(server, "alone", replicas=1)
        (inst,) = instances(server)
        assert inst["node"] == "w5"  # the only worker with its files
        assert inst["claimed"][0]["ram"] > 0  # estimated from the header read on w5
        answer = server.http.post("/v1/completions", json={"model": "alone", "prompt": "hi", "max_tokens": 2})
        assert answer.status_code == 200, answer.text
        assert server.http.post("/api/models/alone/unload", json={}).status_code in (200, 204)
        gone = server.http.post("/api/models", json={"path": str(folder / "nowhere.gguf")})
        assert gone.status_code == 404  # no worker holds it either
    finally:
        os.killpg(w5.pid, signal.SIGKILL)
        w5.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
