"""The files a request names in its media fields (chat image parts, the image of an edit, a
caption or an upscale, a face model's inputs), sent to the engine as their content: engines
never read what a client names (access/files.py reads it, for the callers that may)."""

from __future__ import annotations

from typing import Any

from modelyard.access.files import ClientFiles
from modelyard.access.keys import Caller
from modelyard.formats.files import is_path

# endpoint -> the top-level fields that hold images (a string or a list of strings)
IMAGE_FIELDS = {"images": ("image",), "images/captions": ("image",), "images/upscale": ("image",)}


def may_name_files(endpoint: str, category: str, raw: bytes) -> bool:
    """Whether a body of this endpoint may name a file (cheap: no parsing). A body that hides
    one from this look (JSON escapes) reaches an engine with a path, which it refuses."""
    if endpoint == "chat":
        return b"image_url" in raw
    if endpoint in IMAGE_FIELDS or (endpoint == "embeddings" and category == "face"):
        return b"/" in raw
    return False


def _holders(payload: dict[str, Any], endpoint: str, category: str) -> list[tuple[Any, Any, str, str]]:
    """(container, key, param, what) of every string that may name a file."""
    found: list[tuple[Any, Any, str, str]] = []

    def add(container: Any, key: Any, param: str) -> None:
        value = container[key]
        if isinstance(value, str):
            found.append((container, key, param, "image"))
        elif isinstance(value, list):
            found.extend((value, i, param, "image") for i, item in enumerate(value) if isinstance(item, str))

    if endpoint == "chat":
        for message in payload.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            for part in content if isinstance(content, list) else []:
                if not isinstance(part, dict) or part.get("type") != "image_url":
                    continue
                image = part.get("image_url")
                if isinstance(image, dict) and "url" in image:
                    add(image, "url", "messages")
                elif isinstance(image, str):
                    add(part, "image_url", "messages")
    for field in IMAGE_FIELDS.get(endpoint, ()):
        if field in payload:
            add(payload, field, field)
    if endpoint == "embeddings" and category == "face" and "input" in payload:
        add(payload, "input", "input")
    return found


async def inline_files(
    payload: dict[str, Any], endpoint: str, category: str, files: ClientFiles, caller: Caller
) -> bool:
    """Replace each file ``payload`` names by a data URL of its content; whether any was."""
    named = [h for h in _holders(payload, endpoint, category) if is_path(h[0][h[1]])]
    for container, key, param, what in named:
        container[key] = await files.data_url(caller, container[key], param=param, what=what)
    return bool(named)
