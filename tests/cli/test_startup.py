"""The CLI starts quickly: `modelyard --help` (and so every command) loads click and rich, not the
server, the catalog, pydantic or an HTTP library (the CLI speaks HTTP on a socket); each command
loads its own module (and what it uses) when it runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from modelyard.address import cli_target
from modelyard.config import Settings

HEAVY = (
    "pydantic",
    "sqlalchemy",
    "alembic",
    "fastapi",
    "httpx",
    "pydantic_settings",
    "psutil",
    "modelyard.catalog.store",
    "modelyard.backends.registry",
    "modelyard.deployments.spec",
)


def _loaded_by(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_help_loads_nothing_heavy() -> None:
    loaded = _loaded_by(
        "from modelyard.cli.main import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert "click" in loaded  # the probe ran the CLI
    assert not loaded & set(HEAVY)


def test_a_command_loads_what_it_uses() -> None:
    # `keys ls` opens the catalog itself: it alone pays for it
    loaded = _loaded_by(
        "import os, tempfile\nos.environ['MODELYARD_HOME'] = tempfile.mkdtemp()\n"
        "from modelyard.cli.main import app\n"
        "try:\n    app(['keys', 'ls'])\nexcept SystemExit:\n    pass"
    )
    assert {"sqlalchemy", "modelyard.catalog.store", "pydantic_settings"} <= loaded
    # a command that asks the server speaks HTTP on a socket: no HTTP library, no ssl for http://
    loaded = _loaded_by(
        "import os\nos.environ['MODELYARD_URL'] = 'http://127.0.0.1:9'\n"
        "from modelyard.cli.main import app\n"
        "try:\n    app(['ps'])\nexcept SystemExit:\n    pass"
    )
    assert "socket" in loaded
    assert not loaded & {*HEAVY, "http.client", "ssl"}
    # and only its own command module: `ps` is one of the runtime commands
    commands = {m for m in loaded if m.startswith("modelyard.cli.")}
    assert commands == {"modelyard.cli.main", "modelyard.cli.common", "modelyard.cli.client",
                        "modelyard.cli.render", "modelyard.cli.runtime"}  # fmt: skip


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"MODELYARD_PORT": "9000"},
        {"MODELYARD_HOST": "0.0.0.0", "MODELYARD_PORT": "9001", "MODELYARD_API_KEY": "my-secret"},
        {"MODELYARD_HOST": "::"},
        {"MODELYARD_URL": "https://models.example.org/"},
        {"modelyard_url": "http://10.0.0.2:11480", "modelyard_api_key": "k"},  # names in any case
    ],
)
def test_the_cli_calls_the_server_the_settings_name(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MODELYARD_URL", "MODELYARD_HOST", "MODELYARD_PORT", "MODELYARD_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert cli_target() == (settings.server_url, settings.api_key)


def test_a_port_the_settings_refuse_is_left_to_them() -> None:
    assert cli_target({"MODELYARD_PORT": "http"}) is None
    assert cli_target({"MODELYARD_PORT": "70000"}) is None
