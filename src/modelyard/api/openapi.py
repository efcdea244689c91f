"""``python -m modelyard.api.openapi``: print the HTTP API's OpenAPI schema, from which
scripts/build-web generates the web UI's types. The app is built over a throwaway home."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from modelyard.api.app import create_app
from modelyard.config import Settings


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        app = create_app(Settings(home=Path(home)))
        json.dump(app.openapi(), sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
