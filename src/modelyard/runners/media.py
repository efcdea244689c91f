"""Images that requests carry: data URLs or plain base64. A path is never read here: the gateway
sends a file a client names as its content (access/files.py), for the callers that may name one."""

from __future__ import annotations

import base64
import io
from typing import Any

from modelyard.errors import InvalidRequest
from modelyard.formats.files import is_path

# a path that reached an engine: sent in a form's field, or hidden from the gateway's look
PATH_REFUSED = (
    "'{param}' names a file on the server; send the file itself (a data URL, base64 or a form's file)"
)


def load_image(value: Any, param: str = "image") -> Any:
    """A PIL image in RGB. Remote (http) URLs are refused: engines do not fetch from the network."""
    from PIL import Image

    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{param}' must be an image: a data URL or base64", param=param)
    if value.startswith(("http://", "https://")):
        raise InvalidRequest(
            f"'{param}' is a web URL; send the image itself (a data URL or base64)",
            param=param,
        )
    if is_path(value):
        raise InvalidRequest(PATH_REFUSED.format(param=param), param=param)
    try:
        if value.startswith("data:"):
            raw = base64.b64decode(value.split(",", 1)[1])
        else:
            raw = base64.b64decode(value, validate=True)
        return Image.open(io.BytesIO(raw)).convert("RGB")
    except (OSError, ValueError) as e:
        raise InvalidRequest(f"'{param}' could not be read as an image: {e}", param=param) from None
