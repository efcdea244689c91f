"""Hugging Face's own cache on this machine (what `huggingface-cli download` and transformers
fill): a repo's snapshot found there is imported as it is, with no download (model-compose's
``cache_dir`` and ``local_files_only``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

COMMIT = re.compile(r"[0-9a-f]{40}")


def hub_cache(cache_dir: str | None = None) -> Path:
    """The cache's folder: ``cache_dir`` (its ``hub`` folder when it has one, as
    ~/.cache/huggingface has), else HF_HUB_CACHE, else HF_HOME/hub, else
    ~/.cache/huggingface/hub."""
    if cache_dir:
        given = Path(cache_dir).expanduser()
        return given / "hub" if (given / "hub").is_dir() else given
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def cached_snapshot(repo: str, revision: str | None, cache: Path) -> tuple[Path, str] | None:
    """The folder of ``repo`` at ``revision`` (a branch, a tag or a commit; default main) in
    ``cache``, and its commit; None when the cache does not hold it."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    wanted = revision or "main"
    commit = wanted if COMMIT.fullmatch(wanted) else None
    if commit is None:
        ref = folder / "refs" / wanted
        if not ref.is_file():
            return None
        commit = ref.read_text().strip()
    snapshot = folder / "snapshots" / commit
    if not snapshot.is_dir() or not any(snapshot.iterdir()):
        return None
    return snapshot, commit
