"""A managed environment: `modelyard backends install piper` creates a virtualenv under
MODELYARD_HOME/envs (without torch, which Piper's ONNX voices do not need), and a server told to
use managed environments runs the model there. The Settings page installs one with torch
(tests/webui/test_settings_ui.py)."""

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


def test_install_an_environment_and_serve_from_it(tmp_path: Path) -> None:
    import soundfile

    home = tmp_path / "home"
    env = {**os.environ, "MODELYARD_HOME": str(home), "MODELYARD_TORCH_INDEX": "", "COLUMNS": "200"}
    cli = [sys.executable, "-m", "modelyard.cli.main", "backends"]
    done = subprocess.run(
        [*cli, "install", "piper", "--variant", "cpu"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    folder = home / "envs" / f"piper-cpu-{ENV_VERSION}"
    assert f"installed piper (cpu) in {folder}" in done.stdout
    python = str(folder / "bin" / "python")
    has = "import importlib.util as u, sys; print(*(bool(u.find_spec(m)) for m in sys.argv[1:]))"
    found = subprocess.run(
        [python, "-c", has, "piper", "onnxruntime", "torch"], capture_output=True, text=True
    )
    assert found.stdout.split() == ["True", "True", "False"]  # torch is left out
    listed = subprocess.run(
        [*cli, "ls"], env={**env, "MODELYARD_PYTHON_ENVS": "managed"}, capture_output=True, text=True
    ).stdout
    assert f"piper                  managed env {python}" in listed
    assert (
        "transformers           not installed  install it: `modelyard backends install transformers" in listed
    )

    voice = write_tiny_piper(tmp_path / "voice")
    with serve(home, python_envs="managed") as server:
        assert server.http.post("/api/models", json={"path": str(voice), "name": "voice"}).status_code == 201
        r = server.http.post("/api/models/voice/load", json={})
        assert r.status_code == 200, r.text
        pid = server.http.get("/api/instances").json()[0]["pid"]
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert argv0 == python  # the engine runs in the managed environment
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        wav = client.audio.speech.create(model="voice", voice="alloy", input=TEXT, response_format="wav")
        samples, rate = soundfile.read(io.BytesIO(wav.content), dtype="float32")
        assert rate == 16000
    from piper import PiperVoice  # the same voice in this process: the same samples

    expected = np.concatenate(
        [c.audio_float_array for c in PiperVoice.load(voice / "voice.onnx").synthesize(TEXT)]
    )
    assert len(samples) == len(expected)
    assert np.abs(samples - expected).max() < 2 / 32767  # 16-bit rounding only
