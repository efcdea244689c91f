"""``python -m modelyard.api.openapi``: print the HTTP API's OpenAPI schema, from which
scripts/build-web generates the web UI's types (and the documentation its API reference). The app is built over a throwaway home."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from modelyard.api.app import create_app
from modelyard.config import Settings


def schema() -> dict[str, Any]:
    """The HTTP API's OpenAPI schema."""
    with tempfile.TemporaryDirectory() as home:
        return create_app(Settings(home=Path(home))).openapi()


def main() -> None:
    json.dump(schema(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
