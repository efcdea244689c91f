"""Hugging Face (or a mirror such as hf-mirror.com) through huggingface_hub's API client."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from modelyard.errors import HubAuthRequired, HubUnavailable, RepoNotFound
from modelyard.hub.refs import Source
from modelyard.hub.remote import RemoteFile, SearchHit, Snapshot, safe_relative
from modelyard.hub.retry import with_retries

T = TypeVar("T")

# modelyard's categories -> the Hub's pipeline tags
PIPELINES = {
    "chat": "text-generation",
    "multimodal": "image-text-to-text",
    "embedding": "sentence-similarity",
    "rerank": "text-ranking",
    "image": "text-to-image",
    "classification": "text-classification",
    "speech-to-text": "automatic-speech-recognition",
    "text-to-speech": "text-to-speech",
    "captioning": "image-to-text",
    "upscale": "image-to-image",  # super-resolution models are tagged so
    "video": "text-to-video",
}
# categories the Hub has no pipeline for: a library tag
TAGS = {"face": "insightface"}
TOKEN_HINT = (
    "set HF_TOKEN (or MODELYARD_HF_TOKEN) to a token that may read it, and accept its terms on the Hub"
)


class HuggingFace:
    source = Source.HF

    def __init__(self, endpoint: str, token: str | None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token or None
        # token=False: only the configured token is ever sent, never one found on disk.
        self.api = HfApi(endpoint=self.endpoint, token=self.token or False)
        self._host = urlsplit(self.endpoint).netloc

    def with_token(self, token: str) -> HuggingFace:
        return HuggingFace(self.endpoint, token)

    def headers(self, url: str) -> dict[str, str]:
        if self.token and urlsplit(url).netloc == self._host:
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    def search(self, query: str, *, category: str | None, gguf_only: bool, limit: int) -> list[SearchHit]:
        def run() -> list[SearchHit]:
            infos = self.api.list_models(
                search=query or None,
                filter=[t for t in ("gguf" if gguf_only else None, TAGS.get(category or "")) if t] or None,
                pipeline_tag=PIPELINES.get(category) if category else None,
                sort="downloads",
                limit=limit,
            )
            return [
                SearchHit(
                    source=self.source,
                    repo=info.id,
                    downloads=info.downloads or 0,
                    likes=info.likes or 0,
                    task=info.pipeline_tag,
                    gguf="gguf" in (info.tags or []) or info.library_name == "gguf",
                    updated=info.last_modified.isoformat() if info.last_modified else None,
                    tags=list(info.tags or []),
                )
                for info in infos
            ]

        return self._call(run, f"search {query!r}")

    def snapshot(self, repo: str, revision: str | None) -> Snapshot:
        info = self._call(lambda: self.api.model_info(repo, revision=revision, files_metadata=True), repo)
        # what the hub says of itself is checked (Snapshot refuses names that would escape);
        # a sha that is no text pins nothing, and the files land under the repo that was asked
        # for, whatever other repo's id the answer carries
        commit = (info.sha if isinstance(info.sha, str) else None) or revision or "main"
        named = info.id if isinstance(info.id, str) else repo
        files = []
        for s in info.siblings or []:
            safe_relative(s.rfilename)
            lfs = s.lfs
            files.append(
                RemoteFile(
                    path=s.rfilename,
                    size=lfs.size if lfs else s.size,
                    url=hf_hub_url(repo, s.rfilename, revision=commit, endpoint=self.endpoint),
                    sha256=lfs.sha256 if lfs else None,
                    git_oid=None if lfs else s.blob_id,
                )
            )
        tags = [str(t) for t in info.tags] if isinstance(info.tags, list) else []
        task = info.pipeline_tag if isinstance(info.pipeline_tag, str) else None
        snapshot = Snapshot(self.source, named, commit, files, tags, task)
        return replace(snapshot, repo=repo) if named.casefold() != repo.casefold() else snapshot

    def _call(self, fn: Callable[[], T], what: str) -> T:
        try:
            return with_retries(fn, retryable=_retryable)
        except (KeyError, TypeError, AttributeError) as e:  # huggingface_hub's parsing of the answer
            raise HubUnavailable(
                f"Hugging Face answered {what} with what is not a repo's metadata ({e.__class__.__name__})",
                hint="try again later, or check HF_ENDPOINT",
            ) from e
        except GatedRepoError as e:
            raise HubAuthRequired(f"{what} is gated on Hugging Face", hint=TOKEN_HINT) from e
        except RevisionNotFoundError as e:
            raise RepoNotFound(
                f"{what}: no such revision on Hugging Face", hint="check the branch or commit"
            ) from e
        except EntryNotFoundError as e:
            raise RepoNotFound(f"{what}: no such file on Hugging Face") from e
        except RepositoryNotFoundError as e:
            hint = "check the name" + ("" if self.token else f"; if it is private, {TOKEN_HINT}")
            raise RepoNotFound(f"Hugging Face has no repo {what!r} (or it is private)", hint=hint) from e
        except HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else None
            if status in (401, 403):
                raise HubAuthRequired(f"Hugging Face refused {what} ({status})", hint=TOKEN_HINT) from e
            raise HubUnavailable(f"Hugging Face failed on {what}: {status}", hint="try again later") from e
        except httpx2.HTTPError as e:
            raise HubUnavailable(
                f"cannot reach {self.endpoint}: {e}", hint="check the network, or set HF_ENDPOINT to a mirror"
            ) from e


def _retryable(e: Exception) -> float | None:
    """Seconds to wait before retrying after ``e``, or None when retrying will not help."""
    if isinstance(e, HfHubHTTPError) and e.response is not None:
        status = e.response.status_code
        if status == 429 or status >= 500:
            after = e.response.headers.get("Retry-After", "")
            return float(after) if after.isdigit() else 1.0
        return None
    if isinstance(e, httpx2.TransportError):
        return 1.0
    return None
