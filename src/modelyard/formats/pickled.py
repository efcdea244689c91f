"""The tensor names of a PyTorch checkpoint (the zip format torch.save writes), read without
running its pickle: the pickle's opcodes are walked and only the dictionary keys collected, so
no class is looked up and no code runs."""

from __future__ import annotations

import pickletools
import zipfile
import zlib
from pathlib import Path

KEY_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"})
MAX_PICKLE = 64 << 20  # a state dict's pickle is names and shapes: far less than this


def tensor_names(path: Path) -> set[str] | None:
    """The dotted strings of the pickle (a state dict's names, and module names), or None: not
    a zip checkpoint, or one whose pickle could not be read."""
    try:
        with zipfile.ZipFile(path) as archive:
            found = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(found) != 1 or archive.getinfo(found[0]).file_size > MAX_PICKLE:
                return None
            data = archive.read(found[0])
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError, NotImplementedError, EOFError, zlib.error):
        return None  # not a zip torch.save wrote (a damaged one, an encrypted one, ...)
    names: set[str] = set()
    try:
        for op, arg, _pos in pickletools.genops(data):
            if op.name in KEY_OPS and isinstance(arg, str) and "." in arg and " " not in arg:
                names.add(arg)  # a key, or a module name (torch._utils): never a tensor's data
    except (ValueError, EOFError):
        return None
    return names
