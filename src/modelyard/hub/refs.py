"""What a person types to name a model on a hub, parsed into a Ref.

Accepted:
- ``org/model``, ``org/model:branch``, ``org/model:<40-hex commit>``, ``org/model:Q4_K_M``
- ``org/model/path/to/file.gguf`` (one file)
- ``hf.co/org/model:Q4_K_M`` and full Hugging Face URLs (``/tree/REV``, ``/blob/REV/FILE``,
  ``/resolve/REV/FILE``), on huggingface.co or any mirror
- ``ms:org/model``, ``modelscope.cn/models/org/model`` URLs
- ``ollama:name[:tag]``, ``ollama.com/library/name:tag``
- a bare ``name`` (no slash, no tag) is a repo of the default hub, Hugging Face (``gpt2``); a
  bare ``name:tag`` is an Ollama name still (``llama3.2:1b``), as Ollama itself takes it

Local paths are told apart first (``is_local``): ``/``, ``./``, ``../`` and ``~`` start one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit

from modelyard.errors import InvalidRef


class Source(StrEnum):
    HF = "hf"
    MODELSCOPE = "modelscope"
    OLLAMA = "ollama"


PREFIXES = {
    "hf": Source.HF,
    "huggingface": Source.HF,
    "ms": Source.MODELSCOPE,
    "modelscope": Source.MODELSCOPE,
    "ollama": Source.OLLAMA,
}

QUANT = re.compile(
    r"(?<![a-z0-9])("
    r"iq[1-4]_(?:xxs|xs|s|m|nl)|i?q[2-8]_k(?:_(?:s|m|l|xl))?|q[4-8]_[01]|q4_0_(?:4_4|4_8|8_8)|"
    r"tq[12]_0|mxfp4|bf16|fp16|fp32|f16|f32"
    r")(?![a-z0-9])",
    re.IGNORECASE,
)
MAX_REF = 1024  # characters of a whole reference (a URL with a file path in it)
COMMIT = re.compile(r"^[0-9a-f]{40}\Z")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\Z")  # the hubs take 96 characters


def quantization_in(name: str) -> str | None:
    """The GGUF quantization named in a file name, upper-cased (``Q4_K_M``), if any."""
    found = QUANT.findall(name)
    return found[-1].upper() if found else None


@dataclass(frozen=True)
class Ref:
    source: Source
    repo: str  # org/name; for Ollama namespace/name (library/ when none is given)
    revision: str | None = None  # branch, tag or commit; None = the default branch / latest tag
    quantization: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        text = f"{self.source}:{self.repo}"
        if self.file:
            text += f"/{self.file}"
        if self.revision:
            text += f"@{self.revision}"
        if self.quantization:
            text += f":{self.quantization}"
        return text


def is_local(text: str) -> bool:
    """The path rule of the model-compose manual: what starts with /, ./, ../ or ~ is a local
    path; anything else names a model on a hub."""
    return text.strip().startswith(("/", "./", "../", "~")) or text.strip() in (".", "..")


def parse_ref(text: str, source: Source | None = None) -> Ref:
    raw = text.strip()
    if not raw:
        raise InvalidRef("the model reference is empty", hint="name a repo, such as org/model")
    if len(raw) > MAX_REF:
        raise InvalidRef(f"the model reference is {len(raw)} characters long; {MAX_REF} at most")
    prefix, sep, rest = raw.partition(":")
    if sep and prefix.lower() in PREFIXES and not rest.startswith("//"):
        return _parse(rest, PREFIXES[prefix.lower()], text)
    if "://" in raw or raw.startswith(("hf.co/", "huggingface.co/", "modelscope.cn/", "ollama.com/")):
        return _parse_url(raw if "://" in raw else f"https://{raw}", text)
    if source is None:
        source = Source.OLLAMA if "/" not in raw and ":" in raw else Source.HF
    return _parse(raw, source, text)


def _parse(text: str, source: Source, original: str) -> Ref:
    if source is Source.OLLAMA:
        return _ollama(text, original)
    body, _, suffix = text.partition(":")
    body, _, at = body.partition("@")
    parts = [p for p in body.strip("/").split("/") if p]
    if len(parts) == 1 and source is Source.HF and not suffix:  # gpt2: a repo without an org
        _check_names(parts, original)
        return Ref(source, parts[0], at or None)
    if len(parts) < 2:
        raise InvalidRef(f"{original!r} does not name a repo", hint="write it as org/model")
    _check_names(parts[:2], original)
    repo = "/".join(parts[:2])
    file = "/".join(parts[2:]) or None
    revision = at or None
    quant = None
    if suffix:
        if quantization_in(suffix):
            quant = suffix.upper()
        else:
            revision = suffix
    return Ref(source, repo, revision, quant, file)


def _ollama(text: str, original: str) -> Ref:
    body, _, tag = text.strip("/").partition(":")
    parts = [p for p in body.split("/") if p]
    if not parts or len(parts) > 2:
        raise InvalidRef(f"{original!r} is not an Ollama model name", hint="write it as name or name:tag")
    _check_names(parts, original)
    repo = "/".join(parts) if len(parts) == 2 else f"library/{parts[0]}"
    return Ref(Source.OLLAMA, repo, tag or None)


def _parse_url(url: str, original: str) -> Ref:
    parts = urlsplit(url)
    host = parts.hostname or ""
    path = [p for p in parts.path.split("/") if p]
    if "ollama" in host:
        if path and path[0] == "library":
            path = path[1:]
        return _ollama("/".join(path), original)
    if "modelscope" in host:
        if path and path[0] == "models":
            path = path[1:]
        if len(path) < 2:
            raise InvalidRef(f"{original!r} does not name a ModelScope model")
        repo = "/".join(path[:2])
        query = parse_qs(parts.query)
        revision = query.get("Revision", [None])[0]
        file = query.get("FilePath", [None])[0]
        rest = path[2:]
        if len(rest) >= 3 and rest[:2] == ["file", "view"]:  # /file/view/master/path
            revision, file = rest[2], "/".join(rest[3:]) or None
        _check_names(path[:2], original)
        return Ref(Source.MODELSCOPE, repo, revision, None, file)
    # Hugging Face or a mirror of it
    if len(path) < 2:
        raise InvalidRef(f"{original!r} does not name a Hugging Face repo")
    if path[0] in ("models", "api"):
        path = path[1:]
    repo_text = "/".join(path[:2])
    rest = path[2:]
    ref = _parse(repo_text, Source.HF, original)
    if len(rest) >= 2 and rest[0] in ("tree", "blob", "resolve"):
        return Ref(Source.HF, ref.repo, rest[1], ref.quantization, "/".join(rest[2:]) or None)
    return ref


def _check_names(names: list[str], original: str) -> None:
    for name in names:
        if not _NAME.match(name) or name in (".", ".."):
            raise InvalidRef(f"{original!r}: {name!r} is not a valid repo or model name")
