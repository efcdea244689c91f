"""A model whose repository carries its own Python code runs it only when an admin says so:
trust_remote_code cannot be set without a key, nor with an inference key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.test_security import bearer, make_keys
from conftest import serve
from torch_models import write_chat_model

pytestmark = pytest.mark.engine


def write_model_with_code(folder: Path, marker: Path) -> Path:
    """A chat model whose config names its own modeling code, which leaves ``marker`` when run."""
    write_chat_model(folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomLlama"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_custom.py").write_text(
        "from pathlib import Path\n"
        "from transformers import LlamaForCausalLM\n"
        f"Path({str(marker)!r}).write_text('the repository code ran')\n\n\n"
        "class CustomLlama(LlamaForCausalLM):\n"
        "    pass\n"
    )
    return folder


def test_remote_code_needs_an_admin(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    folder = write_model_with_code(tmp_path / "models" / "custom", marker)
    home = tmp_path / "home"
    secrets = make_keys(home, ("admin", "admin", []), ("app", "inference", []))
    with serve(home, host="0.0.0.0", allowed_dirs=[tmp_path / "models"], health_timeout=120) as server:
        admin = bearer(secrets["admin"])
        added = server.http.post("/api/models", json={"path": str(folder), "name": "custom"}, headers=admin)
        assert added.status_code == 201, added.text
        trust = {"options": {"trust_remote_code": True}}
        assert server.http.put("/api/models/custom/settings", json=trust).status_code == 401
        app = server.http.put("/api/models/custom/settings", json=trust, headers=bearer(secrets["app"]))
        assert app.status_code == 403
        assert server.http.get("/api/models/custom/settings", headers=admin).json()["saved"] == {}
        # loading without it does not run the code
        assert server.http.post("/api/models/custom/load", json={}, headers=admin).status_code == 200
        assert not marker.exists()
        assert server.http.post("/api/models/custom/unload", json={}, headers=admin).status_code == 204
        # an admin may, and then it runs
        assert server.http.put("/api/models/custom/settings", json=trust, headers=admin).status_code == 200
        assert server.http.post("/api/models/custom/load", json={}, headers=admin).status_code == 200
        assert marker.read_text() == "the repository code ran"
