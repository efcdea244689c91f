"""A repo's files grouped by quantization, and the choice of what to fetch."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from modelyard.errors import RepoNotFound
from modelyard.hub.refs import quantization_in
from modelyard.hub.remote import RemoteFile, Snapshot

MMPROJ = "mmproj"
OTHER = "other"
# Weights for other frameworks: left out of a default (non-GGUF) download.
_FOREIGN_DIRS = ("onnx/", "openvino/", "coreml/", "tflite/")
_FOREIGN_SUFFIXES = (".msgpack", ".h5", ".ot", ".onnx", ".onnx_data", ".tflite", ".mlmodel")
_PICKLES = (".bin", ".pt", ".pth", ".ckpt")
_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)


@dataclass
class FileGroup:
    name: str  # a quantization (Q4_K_M), "mmproj", or "other"
    files: list[RemoteFile] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size or 0 for f in self.files)

    @property
    def shards(self) -> int:
        return sum(1 for f in self.files if _SHARD.search(f.path))


def groups(snapshot: Snapshot) -> list[FileGroup]:
    """GGUF files by quantization (shards together), mmproj files, then the rest."""
    by_name: dict[str, FileGroup] = {}
    for f in snapshot.files:
        base = f.path.rsplit("/", 1)[-1].lower()
        if base.endswith(".gguf") and "mmproj" in base:
            key = MMPROJ
        elif base.endswith(".gguf"):
            key = quantization_in(f.path) or f.path.rsplit("/", 1)[-1]
        else:
            key = OTHER
        by_name.setdefault(key, FileGroup(key)).files.append(f)
    ordered = sorted((g for k, g in by_name.items() if k not in (MMPROJ, OTHER)), key=lambda g: g.size)
    ordered += [by_name[k] for k in (MMPROJ, OTHER) if k in by_name]
    return ordered


def is_gguf_repo(snapshot: Snapshot) -> bool:
    return any(f.path.lower().endswith(".gguf") for f in snapshot.files)


def choose(
    snapshot: Snapshot,
    *,
    quantization: str | None = None,
    patterns: list[str] | None = None,
    file: str | None = None,
    everything: bool = False,
) -> list[RemoteFile]:
    """The files to fetch: a named file, glob patterns, a quantization (with an mmproj), the
    whole repo, or by default one GGUF quantization (Q4_K_M when there is one) or the model's
    own weights without other frameworks' copies."""
    files = snapshot.files
    if file:
        wanted = [f for f in files if f.path == file]
        if not wanted:
            raise RepoNotFound(
                f"{snapshot.repo} has no file {file!r} at {snapshot.revision}",
                hint=f"`modelyard files {snapshot.source}:{snapshot.repo}` lists its files",
            )
        return wanted
    if patterns:
        wanted = [f for f in files if any(fnmatch.fnmatch(f.path, p) for p in patterns)]
        if not wanted:
            raise RepoNotFound(
                f"no file of {snapshot.repo} matches {', '.join(patterns)}",
                hint=f"`modelyard files {snapshot.source}:{snapshot.repo}` lists its files",
            )
        return wanted
    if everything:
        return [f for f in files if f.path != ".gitattributes"]
    if is_gguf_repo(snapshot):
        return _gguf_choice(snapshot, quantization)
    if quantization:
        raise RepoNotFound(
            f"{snapshot.repo} has no GGUF files, so no quantization {quantization} to pick",
            hint="leave the quantization out to fetch the model",
        )
    return _default_files(files)


def _gguf_choice(snapshot: Snapshot, quantization: str | None) -> list[RemoteFile]:
    found = groups(snapshot)
    quants = [g for g in found if g.name not in (MMPROJ, OTHER)]
    names = ", ".join(g.name for g in quants)
    pick: FileGroup | None
    if quantization is None:
        if len(quants) == 1:
            pick = quants[0]
        else:
            pick = next((g for g in quants if g.name == "Q4_K_M"), None)  # what Ollama picks too
            if pick is None:
                raise RepoNotFound(
                    f"{snapshot.repo} has several quantizations: {names}",
                    hint=f"pick one: `modelyard pull {snapshot.source}:{snapshot.repo}:{quants[0].name}`",
                )
    else:
        want = quantization.upper()
        pick = next((g for g in quants if g.name == want), None)
        if pick is None:
            pick_files = [
                f for f in snapshot.files if want in f.path.upper() and f.path.lower().endswith(".gguf")
            ]
            if not pick_files:
                raise RepoNotFound(
                    f"{snapshot.repo} has no {quantization} files", hint=f"it has: {names or 'no GGUF files'}"
                )
            pick = FileGroup(want, pick_files)
    chosen = list(pick.files)
    mmproj = next((g for g in found if g.name == MMPROJ), None)
    if mmproj is not None:
        chosen.append(_one_mmproj(mmproj.files, pick.name))
    return chosen


def _one_mmproj(files: list[RemoteFile], quant: str) -> RemoteFile:
    """The projector for a quantization: one named like it, else F16, else the smallest."""
    for wanted in (quant, "F16", "BF16"):
        for f in files:
            if quantization_in(f.path) == wanted:
                return f
    return min(files, key=lambda f: f.size or 0)


def _default_files(files: list[RemoteFile]) -> list[RemoteFile]:
    has_safetensors = any(f.path.endswith(".safetensors") for f in files)
    chosen = []
    for f in files:
        name = f.path.lower()
        if f.path == ".gitattributes" or name.startswith(_FOREIGN_DIRS) or name.endswith(_FOREIGN_SUFFIXES):
            continue
        if has_safetensors and name.endswith(_PICKLES):
            continue
        chosen.append(f)
    return chosen
