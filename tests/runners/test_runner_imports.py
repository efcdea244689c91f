"""The runner starts in a managed environment that holds only its own packages (RUNNER in
backends/environments.py, beside the backend's): its entry must not import what only the
server has (the settings' loader, the catalog, the HTTP client, the CLI)."""

from __future__ import annotations

import subprocess
import sys

SERVER_ONLY = ("pydantic_settings", "sqlalchemy", "alembic", "aiohttp", "psutil", "httpx", "click", "rich")
PROBE = f"""
import sys
for name in {SERVER_ONLY!r}:
    sys.modules[name] = None  # importing it raises ImportError, as where it is not installed
import modelyard.runners.serve
"""


def test_the_runner_starts_without_the_servers_packages() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
