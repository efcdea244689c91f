"""Images that requests carry: data URLs, plain base64, or local files (paths or file:// URLs)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from modelyard.errors import InvalidRequest


def load_image(value: Any, param: str = "image") -> Any:
    """A PIL image in RGB. Remote (http) URLs are refused: engines do not fetch from the network."""
    from PIL import Image

    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{param}' must be an image: a file, a data URL or base64", param=param)
    if value.startswith(("http://", "https://")):
        raise InvalidRequest(
            f"'{param}' is a web URL; send the image itself (a data URL or base64) or a local file path",
            param=param,
        )
    try:
        if value.startswith("data:"):
            raw = base64.b64decode(value.split(",", 1)[1])
        elif value.startswith("file://") or value.startswith("/"):
            raw = Path(value.removeprefix("file://")).read_bytes()
        else:
            raw = base64.b64decode(value, validate=True)
        return Image.open(io.BytesIO(raw)).convert("RGB")
    except (OSError, ValueError) as e:
        raise InvalidRequest(f"'{param}' could not be read as an image: {e}", param=param) from None
