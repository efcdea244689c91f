"""A managed environment, installed by the first load that needs it: on a server told to use
managed environments, `modelyard load` of a Piper voice finds none, the server installs one
under MODELYARD_HOME/envs (without torch, which Piper's ONNX voices do not need) while the CLI
follows it, and the load goes on in it; `backends install` then finds it up to date. The
Settings page installs one with torch (tests/webui/test_settings_ui.py)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import openai
import pytest

from conftest import serve
from modelyard.backends.environments import ENV_VERSION
from torch_models import write_tiny_piper

pytestmark = pytest.mark.engine

TEXT = "Hello there."


def test_the_first_load_installs_the_environment_and_serves_from_it(tmp_path: Path) -> None:
    import soundfile

    home = tmp_path / "home"
    voice = write_tiny_piper(tmp_path / "voice")
    folder = home / "envs" / f"piper-cpu-{ENV_VERSION}"
    python = str(folder / "bin" / "python")
    with serve(home, python_envs="managed", torch_index="") as server:
        assert server.http.post("/api/models", json={"path": str(voice), "name": "voice"}).status_code == 201
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
        env |= {"MODELYARD_URL": server.url, "MODELYARD_HOME": str(home), "COLUMNS": "200"}
        cli = [sys.executable, "-m", "modelyard.cli.main"]
        loaded = subprocess.run([*cli, "load", "voice"], env=env, capture_output=True, text=True)
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        assert "piper is not installed yet: modelyard is installing it now" in loaded.stdout
        assert "  virtualenv " in loaded.stdout  # the install's stages, as a log shows them (no terminal)
        assert "voice serving" in loaded.stdout
        (job,) = server.http.get("/api/installs").json()
        assert (job["backend"], job["variant"], job["state"], job["where"]) == (
            "piper",
            "cpu",
            "done",
            str(folder),
        )
        pid = server.http.get("/api/instances").json()[0]["pid"]
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert argv0 == python  # the engine runs in the managed environment
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        wav = client.audio.speech.create(model="voice", voice="alloy", input=TEXT, response_format="wav")
        samples, rate = soundfile.read(io.BytesIO(wav.content), dtype="float32")
        assert rate == 16000

    has = "import importlib.util as u, sys; print(*(bool(u.find_spec(m)) for m in sys.argv[1:]))"
    found = subprocess.run(
        [python, "-c", has, "piper", "onnxruntime", "torch"], capture_output=True, text=True
    )
    assert found.stdout.split() == ["True", "True", "False"]  # torch is left out
    env = {**os.environ, "MODELYARD_HOME": str(home), "MODELYARD_TORCH_INDEX": "", "COLUMNS": "200"}
    again = subprocess.run(
        [*cli, "backends", "install", "piper", "--variant", "cpu"], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"piper (cpu) is up to date in {folder}" in again.stdout
    listed = subprocess.run(
        [*cli, "backends", "ls"],
        env={**env, "MODELYARD_PYTHON_ENVS": "managed"},
        capture_output=True,
        text=True,
    ).stdout
    assert f"piper                  managed env {python}" in listed

    from piper import PiperVoice  # the same voice in this process: the same samples

    expected = np.concatenate(
        [c.audio_float_array for c in PiperVoice.load(voice / "voice.onnx").synthesize(TEXT)]
    )
    assert len(samples) == len(expected)
    assert np.abs(samples - expected).max() < 2 / 32767  # 16-bit rounding only
