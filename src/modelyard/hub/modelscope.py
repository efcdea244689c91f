"""ModelScope through its own client library (modelscope-hub)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import modelscope_hub
from modelscope_hub import HubApi

from modelyard.errors import HubAuthRequired, HubUnavailable, RepoNotFound
from modelyard.hub.refs import Source
from modelyard.hub.remote import RemoteFile, SearchHit, Snapshot, safe_relative

T = TypeVar("T")

# modelyard's categories -> ModelScope's task names
TASKS = {
    "chat": "text-generation",
    "multimodal": "image-text-to-text",
    "embedding": "sentence-embedding",
    "rerank": "text-ranking",
    "image": "text-to-image-synthesis",
    "classification": "text-classification",
    "speech-to-text": "auto-speech-recognition",
    "text-to-speech": "text-to-speech",
    "captioning": "image-captioning",
    "upscale": "image-super-resolution",
    "face": "face-recognition",
    "video": "text-to-video-synthesis",
}
TOKEN_HINT = "set MODELSCOPE_API_TOKEN (or MODELYARD_MODELSCOPE_TOKEN) to a token that may read it"


class ModelScope:
    source = Source.MODELSCOPE

    def __init__(self, endpoint: str, token: str | None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token or None
        self.api = HubApi(endpoint=self.endpoint, token=self.token or "")
        self._host = urlsplit(self.endpoint).netloc

    def with_token(self, token: str) -> ModelScope:
        return ModelScope(self.endpoint, token)

    def headers(self, url: str) -> dict[str, str]:
        if self.token and urlsplit(url).netloc == self._host:
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    def search(self, query: str, *, category: str | None, gguf_only: bool, limit: int) -> list[SearchHit]:
        filters: dict[str, Any] = {}
        if category and category in TASKS:
            filters["task"] = TASKS[category]
        if gguf_only:
            filters["library"] = "GGUF"
        page = self._call(
            lambda: self.api.list_repos("model", search=query or None, page_size=limit, **filters),
            f"search {query!r}",
        )
        return [
            SearchHit(
                source=self.source,
                repo=info.repo_id or str(info.id),
                downloads=info.downloads,
                likes=info.likes,
                task=info.tasks[0] if info.tasks else None,
                gguf=gguf_only or any(t.lower() == "gguf" for t in info.tags),
                updated=str(info.last_modified) if info.last_modified else None,
                tags=list(info.tags),
            )
            for info in page.items
        ]

    def snapshot(self, repo: str, revision: str | None) -> Snapshot:
        rev = revision or "master"
        listed = self._call(lambda: self.api.list_repo_files(repo, "model", revision=rev), repo)
        files = []
        for f in listed:
            if f.is_dir:
                continue
            safe_relative(f.path)
            url = self.api.legacy.get_download_url(repo, "model", f.path, revision=rev)
            files.append(RemoteFile(path=f.path, size=f.size, url=url, sha256=f.sha256 or None))
        if not files:
            raise RepoNotFound(
                f"ModelScope has no files in {repo} at {rev}", hint="check the name and revision"
            )
        return Snapshot(self.source, repo, rev, files)

    def _call(self, fn: Callable[[], T], what: str) -> T:
        try:
            return fn()
        except (modelscope_hub.NotExistError, modelscope_hub.NotFoundError) as e:
            hint = "check the name" + ("" if self.token else f"; if it is private, {TOKEN_HINT}")
            raise RepoNotFound(f"ModelScope has no model {what!r} (or it is private)", hint=hint) from e
        except (modelscope_hub.AuthenticationError, modelscope_hub.PermissionDeniedError) as e:
            raise HubAuthRequired(f"ModelScope refused {what}", hint=TOKEN_HINT) from e
        except modelscope_hub.HubError as e:
            raise HubUnavailable(
                f"ModelScope failed on {what}: {e}", hint="check the network or MODELSCOPE_ENDPOINT"
            ) from e
