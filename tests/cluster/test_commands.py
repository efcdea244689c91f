"""`modelyard cluster start` and `modelyard worker join` as a user runs them: a real head and a
worker that joins it (Ray in the foreground with --block), read back by a Ray driver."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port
from waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.engine]
MODELYARD = str(Path(sys.executable).parent / "modelyard")
READ = """
import json, ray, sys
ray.init(address=sys.argv[1], log_to_driver=False)
print(json.dumps([{"labels": n["Labels"], "resources": n["Resources"]} for n in ray.nodes() if n["Alive"]]))
"""


def host_address() -> str:
    """This machine's address as Ray picks it: a worker joins a head at its own address, not at
    127.0.0.1 (Ray keeps a one-machine cluster on 127.0.0.1 only when multi-node is off)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("8.8.8.8", 80))  # no packet is sent: this picks the route's source address
        return str(s.getsockname()[0])


def test_a_head_and_a_worker_join_with_labels_and_memory(tmp_path: Path) -> None:
    port = free_port()
    address = f"{host_address()}:{port}"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    head = [MODELYARD, "cluster", "start", "--port", str(port), "--name", "head"]
    head += ["--label", "zone=a", "--ram", "2", "--block"]
    worker = [MODELYARD, "worker", "join", address, "--name", "box2", "-l", "zone=b", "--ram", "1", "--block"]
    started = []
    try:
        started.append(
            subprocess.Popen(
                head, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
            )
        )

        def read() -> list[dict[str, dict[str, object]]]:
            probe = subprocess.run(
                [sys.executable, "-c", READ, address], env=env, capture_output=True, text=True
            )
            return json.loads(probe.stdout.splitlines()[-1]) if probe.returncode == 0 else []

        eventually(read, timeout=60, every=1, what="the head answering")
        started.append(
            subprocess.Popen(
                worker, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
            )
        )

        def both() -> list[dict[str, dict[str, object]]] | None:
            found = read()
            return found if len(found) == 2 else None

        nodes = eventually(both, timeout=60, every=1, what="the worker joined")
        by_name = {n["labels"].get("modelyard/worker", "?"): n for n in nodes}
        assert sorted(by_name) == ["box2", "head"], nodes
        assert by_name["head"]["labels"]["zone"] == "a"
        assert by_name["box2"]["labels"]["zone"] == "b"
        assert by_name["head"]["resources"]["modelyard_ram"] == 2048
        assert by_name["box2"]["resources"]["modelyard_ram"] == 1024
    finally:
        for p in reversed(started):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)
