"""Image parts of chat messages that name local files: llama-server takes images only inline,
so the gateway reads the file and sends it as a data URL (the Python runner reads files itself)."""

from __future__ import annotations

import base64
import mimetypes
from pathlib import Path
from typing import Any

from modelyard.errors import InvalidInput

MAX_IMAGE = 64 << 20


def local_image_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The image_url objects of ``body``'s messages whose URL is a local path or file:// URL."""
    found: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            image = part.get("image_url")
            if not isinstance(image, dict):
                continue
            url = image.get("url")
            if isinstance(url, str) and (url.startswith("file://") or url.startswith("/")):
                found.append(image)
    return found


def inline(images: list[dict[str, Any]]) -> None:
    """Replace each local file URL by a data URL of the file (blocking: run it in a thread)."""
    for image in images:
        path = Path(str(image["url"]).removeprefix("file://"))
        try:
            size = path.stat().st_size
            if size > MAX_IMAGE:
                raise InvalidInput(f"the image {path} is {size / 2**20:.0f} MiB; the limit is 64 MiB")
            raw = path.read_bytes()
        except OSError as e:
            raise InvalidInput(f"cannot read the image {path}: {e.strerror}", hint="check the path") from None
        kind = mimetypes.guess_type(path.name)[0] or "image/png"
        image["url"] = f"data:{kind};base64,{base64.b64encode(raw).decode()}"
