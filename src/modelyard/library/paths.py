"""Completion of paths on the server's disk, for the import dialog: what a prefix may continue as."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modelyard.errors import PathNotFound
from modelyard.formats.files import usable_path

MODEL_SUFFIXES = (".gguf", ".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".sft", ".onnx")
LIMIT = 200


@dataclass(frozen=True)
class Entry:
    path: str
    name: str
    folder: bool
    size: int | None  # files only
    model: bool  # a model file, or a folder with a model's config


def complete(prefix: str, *, limit: int = LIMIT) -> list[Entry]:
    """The entries of the folder `prefix` names (when it ends with /) or of its parent whose names
    start with its last part; folders first, hidden entries only when asked for by a leading dot."""
    usable_path(prefix or "/")  # a NUL byte or an impossible length: a clear error
    text = os.path.expanduser(prefix or "/")
    if not os.path.isabs(text):
        text = os.path.join(Path.home(), text)
    folder, start = (text, "") if text.endswith(os.sep) else os.path.split(text)
    if not os.path.isdir(folder):
        raise PathNotFound(folder)
    entries: list[Entry] = []
    try:
        with os.scandir(folder) as scan:
            for e in scan:
                if not e.name.startswith(start) or (e.name.startswith(".") and not start.startswith(".")):
                    continue
                try:
                    is_dir = e.is_dir()
                    size = None if is_dir else e.stat().st_size
                except OSError:
                    continue
                entries.append(Entry(e.path, e.name, is_dir, size, _looks_like_model(e.path, is_dir)))
    except PermissionError:
        return []  # nothing to offer; importing from there would fail with its own error
    entries.sort(key=lambda x: (not x.folder, x.name.lower()))
    return entries[:limit]


def _looks_like_model(path: str, folder: bool) -> bool:
    if not folder:
        return path.lower().endswith(MODEL_SUFFIXES)
    if any(os.path.isfile(os.path.join(path, f)) for f in ("config.json", "model_index.json")):
        return True
    try:  # a face pack: ONNX models
        return any(name.endswith(".onnx") for name in os.listdir(path))
    except OSError:
        return False
