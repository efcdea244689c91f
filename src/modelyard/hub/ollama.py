"""The Ollama library: registry manifests -> the GGUF blob and its template, params and projector.

The registry speaks the OCI distribution API: ``GET /v2/{ns}/{name}/manifests/{tag}`` gives the
layers by media type and digest; ``GET /v2/{ns}/{name}/blobs/{digest}`` redirects to the blob.
"""

from __future__ import annotations

import httpx

from modelyard.errors import HubUnavailable, RepoNotFound, Unsupported
from modelyard.hub.refs import Source
from modelyard.hub.remote import RemoteFile, SearchHit, Snapshot
from modelyard.hub.retry import with_retries

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
PREFIX = "application/vnd.ollama.image."


def _layer_file(kind: str, name: str, tag: str) -> str | None:
    """The file name a layer of this media type gets in the download folder."""
    return {
        "model": f"{name}-{tag}.gguf",
        "projector": f"mmproj-{name}-{tag}.gguf",
        "adapter": f"adapter-{name}-{tag}.gguf",
        "template": "template.gotmpl",
        "params": "params.json",
        "system": "system.txt",
        "license": "LICENSE",
    }.get(kind)


class Ollama:
    source = Source.OLLAMA

    def __init__(self, registry: str) -> None:
        self.registry = self.endpoint = registry.rstrip("/")

    def headers(self, url: str) -> dict[str, str]:
        return {}

    def with_token(self, token: str) -> Ollama:
        return self  # the Ollama library is public: no token is asked for

    def search(self, query: str, *, category: str | None, gguf_only: bool, limit: int) -> list[SearchHit]:
        raise Unsupported(
            "the Ollama registry has no search API",
            hint="browse https://ollama.com/library, then `modelyard pull ollama:NAME:TAG`",
        )

    def snapshot(self, repo: str, revision: str | None) -> Snapshot:
        tag = revision or "latest"
        name = repo.rsplit("/", 1)[-1]
        url = f"{self.registry}/v2/{repo}/manifests/{tag}"

        def fetch() -> httpx.Response:
            r = httpx.get(url, headers={"Accept": MANIFEST}, follow_redirects=True, timeout=30)
            if r.status_code == 429 or r.status_code >= 500:
                r.raise_for_status()
            return r

        try:
            r = with_retries(fetch, retryable=_retryable)
        except httpx.HTTPError as e:
            raise HubUnavailable(f"cannot fetch {repo}:{tag} from {self.registry}: {e}") from e
        if r.status_code == 404:
            shown = repo.removeprefix("library/")
            raise RepoNotFound(
                f"the Ollama library has no {shown}:{tag}",
                hint="check the name and tag on https://ollama.com/library",
            )
        if r.status_code != 200:
            raise HubUnavailable(f"the Ollama registry answered {r.status_code} for {repo}:{tag}")
        try:
            layers = r.json()["layers"]
        except (ValueError, KeyError, TypeError) as e:
            raise HubUnavailable(
                f"the Ollama registry sent a manifest for {repo}:{tag} that is not one"
            ) from e
        files = []
        for layer in layers:
            kind = str(layer.get("mediaType", "")).removeprefix(PREFIX)
            path = _layer_file(kind, name, tag)
            digest = str(layer.get("digest", ""))
            if path is None or not digest.startswith("sha256:"):
                continue
            files.append(
                RemoteFile(
                    path=path,
                    size=int(layer["size"]),
                    url=f"{self.registry}/v2/{repo}/blobs/{digest}",
                    sha256=digest.removeprefix("sha256:"),
                )
            )
        if not any(f.path.endswith(".gguf") for f in files):
            raise RepoNotFound(f"{repo}:{tag} on the Ollama registry has no model layer")
        return Snapshot(self.source, repo, tag, files)


def _retryable(e: Exception) -> float | None:
    if isinstance(e, httpx.HTTPStatusError):
        return 1.0
    if isinstance(e, httpx.TransportError):
        return 1.0
    return None
