"""A managed environment: `modelyard backends install sentence-transformers` creates a virtualenv
under MODELYARD_HOME/envs, and a server told to use managed environments runs the model there."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import serve
from modelyard.backends.environments import ENV_VERSION

pytestmark = pytest.mark.engine


def test_install_an_environment_and_serve_from_it(tmp_path: Path, minilm: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "MODELYARD_HOME": str(home), "MODELYARD_TORCH_INDEX": "", "COLUMNS": "200"}
    cli = [sys.executable, "-m", "modelyard.cli.main", "backends"]
    done = subprocess.run(
        [*cli, "install", "sentence-transformers", "--variant", "cpu"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    folder = home / "envs" / f"sentence-transformers-cpu-{ENV_VERSION}"
    assert f"installed sentence-transformers (cpu) in {folder}" in done.stdout
    listed = subprocess.run(
        [*cli, "ls"], env={**env, "MODELYARD_PYTHON_ENVS": "managed"}, capture_output=True, text=True
    ).stdout
    assert f"sentence-transformers  managed env {folder}/bin/python" in listed
    assert (
        "transformers           not installed  install it: `modelyard backends install transformers" in listed
    )

    with serve(home, python_envs="managed") as server:
        assert (
            server.http.post("/api/models", json={"path": str(minilm), "name": "minilm"}).status_code == 201
        )
        r = server.http.post("/api/models/minilm/load", json={})
        assert r.status_code == 200, r.text
        pid = server.http.get("/api/instances").json()[0]["pid"]
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert argv0 == str(folder / "bin" / "python")  # the engine runs in the managed environment
        got = server.http.post("/v1/embeddings", json={"model": "minilm", "input": "a cat on a mat"}).json()
        vector = got["data"][0]["embedding"]
        assert len(vector) == 384
        assert abs(math.sqrt(sum(x * x for x in vector)) - 1) < 1e-4
