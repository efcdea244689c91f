"""`modelyard doctor` on this machine (no GPU): with backends removed on purpose (an empty home,
no llama-server, the Python backends asked for in managed environments) it names each and the
command that installs it; a port another program holds, a catalog it cannot reach and a
network address without a key are problems (exit 1); a port a modelyard holds is not."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import RunningServer
from modelyard import __version__


def doctor(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env |= {"MODELYARD_HOME": str(tmp_path / "home"), "COLUMNS": "200"} | settings
    return subprocess.run(
        [sys.executable, "-m", "modelyard.cli.main", "doctor", *args], env=env, capture_output=True, text=True
    )


def findings(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    answer = json.loads(done.stdout)
    assert answer["version"] == __version__
    return {f"{f['area']}/{f['name']}": f for f in answer["findings"]}


def test_missing_backends_are_named_with_the_command_that_installs_them(tmp_path: Path) -> None:
    done = doctor(tmp_path, "--json", MODELYARD_PYTHON_ENVS="managed")
    assert done.returncode == 0, done.stderr  # a missing backend is not a problem
    found = findings(done)
    assert json.loads(done.stdout)["ok"] is True
    llama = found["backend/llama.cpp"]
    assert (llama["status"], llama["fix"]) == ("missing", "modelyard backends install llama.cpp")
    transformers = found["backend/transformers"]
    assert transformers["status"] == "missing"
    assert transformers["fix"].startswith("modelyard backends install transformers --variant ")
    assert found["backend/llama-cpp-python"]["status"] == "ok"  # the llama extra is installed here
    assert found["gpu/GPUs"]["detail"] == "none found: the engines run on the CPU"
    assert found["catalog/catalog"]["status"] == "ok"
    assert not (tmp_path / "home" / "catalog.db").exists()  # looked at, never made

    shown = doctor(tmp_path, MODELYARD_PYTHON_ENVS="managed")
    assert shown.returncode == 0
    assert "fix: modelyard backends install llama.cpp" in shown.stdout


def test_problems_say_how_to_fix_them(tmp_path: Path) -> None:
    with socket.socket() as holder:  # another program on the port
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = doctor(
            tmp_path, "--json", MODELYARD_HOST="0.0.0.0", MODELYARD_PORT=str(port),
            MODELYARD_DATABASE_URL="postgresql://me:hunter2@127.0.0.1:1/catalog",
        )  # fmt: skip
    assert done.returncode == 1
    found = findings(done)
    assert json.loads(done.stdout)["ok"] is False
    taken = found["port/port"]
    assert taken["status"] == "problem"
    assert f"0.0.0.0:{port} is taken by another program" in taken["detail"]
    assert taken["fix"].startswith(f"modelyard serve --port {port + 1}")
    catalog = found["catalog/catalog"]
    assert catalog["status"] == "problem"
    assert "hunter2" not in done.stdout
    assert "MODELYARD_DATABASE_URL" in catalog["fix"]
    # a catalog it cannot read has no keys to count: the network address is a problem only once it
    # can say there are none
    unguarded = doctor(tmp_path, "--json", MODELYARD_HOST="0.0.0.0", MODELYARD_PORT=str(port))
    keys = findings(unguarded)["keys/API keys"]
    assert (keys["status"], keys["fix"]) == ("problem", "modelyard keys create admin --scope admin")


def test_a_port_modelyard_holds_is_no_problem(tmp_path: Path, server: RunningServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    done = doctor(tmp_path, "--json", MODELYARD_PORT=port)
    taken = findings(done)["port/port"]
    assert (taken["status"], taken["detail"]) == (
        "ok",
        f"127.0.0.1:{port}: modelyard {__version__} runs there",
    )
