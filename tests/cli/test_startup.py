"""The CLI starts quickly: `modelyard --help` (and so every command) loads typer and rich, not the
server, the catalog, the HTTP client or pydantic-settings; each command loads what it uses when
it runs."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
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
    assert "typer" in loaded  # the probe ran the CLI
    assert not loaded & set(HEAVY)


def test_a_command_loads_what_it_uses() -> None:
    # `keys ls` opens the catalog itself: it alone pays for it
    loaded = _loaded_by(
        "import os, tempfile\nos.environ['MODELYARD_HOME'] = tempfile.mkdtemp()\n"
        "from modelyard.cli.main import app\n"
        "try:\n    app(['keys', 'ls'])\nexcept SystemExit:\n    pass"
    )
    assert {"sqlalchemy", "modelyard.catalog.store", "pydantic_settings"} <= loaded
