"""The folders the server may read models from and write downloads to.

``MODELYARD_ALLOWED_DIRS`` lists them. Without it, a server that needs keys allows the models
folder under its home, its downloads folder and the folders of the models already in the
library; an open server on loopback (a laptop) is not limited. Paths are taken as they resolve
(symbolic links followed), so a link cannot lead out of an allowed folder."""

from __future__ import annotations

import os
from pathlib import Path

from modelyard.access.keys import Keys
from modelyard.catalog.store import Store
from modelyard.config import Settings
from modelyard.errors import PathNotAllowed
from modelyard.formats.files import usable_path


class Folders:
    def __init__(self, settings: Settings, store: Store, keys: Keys) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys

    def limited(self) -> bool:
        return self.settings.allowed_dirs is not None or self.keys.required()

    def allowed(self) -> list[Path]:
        s = self.settings
        roots = [s.models_dir, s.downloads_dir, *(s.allowed_dirs or [])]
        if s.allowed_dirs is None:  # where what is in the library already lies
            for known in self.store.known_paths():
                path = Path(known)
                roots.append(path if path.is_dir() else path.parent)
        return [Path(os.path.realpath(r)) for r in roots]

    def check(self, path: str | Path) -> None:
        """PathNotAllowed unless ``path`` lies in an allowed folder (when the server is limited);
        InvalidInput for a path no file system could hold."""
        usable = usable_path(path)
        if not self.limited():
            return
        real = Path(os.path.realpath(usable))
        if not any(real == root or real.is_relative_to(root) for root in self.allowed()):
            raise PathNotAllowed(str(path))
