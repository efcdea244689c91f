"""What a hub says about a repo: its files with sizes and checksums, and search hits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Protocol

from modelyard.errors import UnsafePath
from modelyard.hub.refs import Source


@dataclass
class RemoteFile:
    path: str  # relative to the repo, with / separators
    size: int | None
    url: str
    sha256: str | None = None  # LFS files, ModelScope, Ollama blobs
    git_oid: str | None = None  # Hugging Face's git blob id for small non-LFS files (sha1)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "url": self.url,
            "sha256": self.sha256,
            "git_oid": self.git_oid,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RemoteFile:
        return cls(data["path"], data.get("size"), data["url"], data.get("sha256"), data.get("git_oid"))


# What a hub may call a repo (org/name) and a revision (a commit, a branch, a tag): they become
# folders under the models folder, so nothing else is taken from it.
NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


@dataclass
class Snapshot:
    """One revision of a repo, pinned (a commit on Hugging Face). The repo and revision are
    checked as the hub gives them, before they touch a path."""

    source: Source
    repo: str
    revision: str
    files: list[RemoteFile]
    tags: list[str] = field(default_factory=list)
    task: str | None = None

    def __post_init__(self) -> None:
        parts = self.repo.split("/")
        if len(parts) > 2 or not all(NAME_PART.match(p) and ".." not in p for p in parts):
            raise UnsafePath(f"the hub named its repo {self.repo!r}: refused", hint="check the reference")
        if not NAME_PART.match(self.revision) or ".." in self.revision:
            raise UnsafePath(
                f"the hub named a revision {self.revision!r}, which cannot be a folder: refused",
                hint="ask for a commit or a plain branch name",
            )


@dataclass
class SearchHit:
    source: Source
    repo: str
    downloads: int = 0
    likes: int = 0
    task: str | None = None
    gguf: bool = False
    updated: str | None = None
    tags: list[str] = field(default_factory=list)


class Hub(Protocol):
    """A source of models. The calls block: the caller runs them in a thread."""

    source: Source
    endpoint: str  # where its API is

    def search(self, query: str, *, category: str | None, gguf_only: bool, limit: int) -> list[SearchHit]: ...

    def snapshot(self, repo: str, revision: str | None) -> Snapshot: ...

    def headers(self, url: str) -> dict[str, str]:
        """Headers (a token) for fetching ``url``; nothing for hosts other than the hub's own."""
        ...

    def with_token(self, token: str) -> Hub:
        """The same hub, asked with ``token`` (one request's own, such as a spec's)."""
        ...


def safe_relative(path: str) -> PurePosixPath:
    """A remote file name as a path that stays inside the destination, or UnsafePath."""
    if not path or "\\" in path or "\0" in path:
        raise UnsafePath(f"the hub named a file {path!r}: refused", hint="report the repo to its owner")
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise UnsafePath(
            f"the hub named a file {path!r}, which would land outside the download folder: refused",
            hint="report the repo to its owner",
        )
    return p
