"""The downloader and the hub clients against the fake hub: the real huggingface_hub,
modelscope-hub and Ollama registry calls, with faults on the way."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from pathlib import Path

import pytest

from fakehub import TOKEN, FakeHub, Fault
from modelyard.errors import (
    HubAuthRequired,
    HubUnavailable,
    IntegrityError,
    RepoNotFound,
    UnsafePath,
    Unsupported,
)
from modelyard.hub import transfer
from modelyard.hub.huggingface import HuggingFace
from modelyard.hub.modelscope import ModelScope
from modelyard.hub.ollama import Ollama
from modelyard.hub.remote import Hub, RemoteFile
from modelyard.hub.transfer import Transfer, client_session

pytestmark = pytest.mark.slow


MiB = 1 << 20


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of 1 MiB from 2 MiB up, so that small files take the parallel path."""
    monkeypatch.setattr(transfer, "PIECE", MiB)
    monkeypatch.setattr(transfer, "BIG", 2 * MiB)
    monkeypatch.setattr(transfer, "SAVE_BYTES", 256 << 10)


def fetch(
    client: Hub,
    files: list[RemoteFile],
    root: Path,
    *,
    stall: float = 30.0,
    cancel_after: int | None = None,
    **kw: object,
) -> Transfer:
    """Run one transfer to the end (or cancel it once ``cancel_after`` bytes are written)."""

    async def go() -> Transfer:
        async with client_session(stall) as session:
            written = 0
            t = Transfer(session, client, files, work=root / "work", dest=root / "dest", **kw)  # type: ignore[arg-type]
            task = asyncio.ensure_future(t.run())
            if cancel_after is not None:

                def count(n: int) -> None:
                    nonlocal written
                    written += n
                    if written >= cancel_after:
                        task.cancel()

                t.on_bytes = count
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return t

    return asyncio.run(go())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_hugging_face_search_and_files(hub: FakeHub, ggufs: dict[str, bytes]) -> None:
    hub.add_hf(
        "org/tiny-GGUF", {"tiny-Q8_0.gguf": ggufs["q8"], "README.md": b"# tiny"}, tags=["gguf"], downloads=9
    )
    hub.add_hf(
        "org/tiny-st", {"model.safetensors": b"x" * 20}, pipeline_tag="sentence-similarity", downloads=3
    )
    hf = HuggingFace(hub.url, None)
    assert [h.repo for h in hf.search("tiny", category=None, gguf_only=False, limit=10)] == [
        "org/tiny-GGUF",
        "org/tiny-st",
    ]
    assert [h.repo for h in hf.search("tiny", category=None, gguf_only=True, limit=10)] == ["org/tiny-GGUF"]
    assert [h.repo for h in hf.search("", category="embedding", gguf_only=False, limit=10)] == ["org/tiny-st"]
    # the new categories: a pipeline where the Hub has one, a library tag where it has none
    hub.add_hf("org/4x-esrgan", {"4x.pth": b"x"}, pipeline_tag="image-to-image", downloads=2)
    hub.add_hf("org/buffalo", {"det_10g.onnx": b"x"}, tags=["insightface", "onnx"], downloads=1)
    hub.add_hf("org/blip", {"model.safetensors": b"x"}, pipeline_tag="image-to-text", downloads=1)
    assert [h.repo for h in hf.search("", category="upscale", gguf_only=False, limit=10)] == ["org/4x-esrgan"]
    assert [h.repo for h in hf.search("", category="face", gguf_only=False, limit=10)] == ["org/buffalo"]
    assert [h.repo for h in hf.search("", category="captioning", gguf_only=False, limit=10)] == ["org/blip"]
    snap = hf.snapshot("org/tiny-GGUF", None)
    assert len(snap.revision) == 40
    by_path = {f.path: f for f in snap.files}
    assert by_path["tiny-Q8_0.gguf"].sha256 == sha(ggufs["q8"])
    assert by_path["tiny-Q8_0.gguf"].size == len(ggufs["q8"])
    assert by_path["README.md"].git_oid is not None  # small files: checked by their git blob id
    assert by_path["tiny-Q8_0.gguf"].url.endswith(f"/org/tiny-GGUF/resolve/{snap.revision}/tiny-Q8_0.gguf")
    # a hub that answers with another repo's id cannot send the files to that repo's folder
    hub.add_hf("org/asked", {"a.gguf": ggufs["q8"]}).id = "victim/repo"
    assert hf.snapshot("org/asked", None).repo == "org/asked"
    # metadata that is no repo's: a typed error, never a crash; a sha that is no text pins nothing
    hub.add_hf("org/no-id", {"a.gguf": ggufs["q8"]}).garbled = {"id": None, "modelId": None}
    with pytest.raises(HubUnavailable, match="not a repo's metadata"):
        hf.snapshot("org/no-id", None)
    hub.add_hf("org/bad-siblings", {"a.gguf": ggufs["q8"]}).garbled = {"siblings": [{"size": 1}]}
    with pytest.raises(HubUnavailable, match="not a repo's metadata"):
        hf.snapshot("org/bad-siblings", None)
    hub.add_hf("org/number-sha", {"a.gguf": ggufs["q8"]}).garbled = {"sha": 12345}
    assert hf.snapshot("org/number-sha", None).revision == "main"


def test_parallel_ranged_download_is_verified_and_renamed(hub: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(5 * MiB + 123)
    small = b"# readme\n"
    hub.add_hf("org/big", {"weights.gguf": data, "README.md": small})
    hf = HuggingFace(hub.url, None)
    snap = hf.snapshot("org/big", None)
    t = fetch(hf, snap.files, tmp_path, connections=3)
    assert (tmp_path / "dest/weights.gguf").read_bytes() == data
    assert (tmp_path / "dest/README.md").read_bytes() == small
    assert not list((tmp_path / "work").rglob("*.part"))
    ranges = [h.get("Range") for m, p, h in hub.requests if p.startswith("/cdn/")]
    assert len(ranges) == 6  # six pieces of 1 MiB, each its own ranged GET
    assert all(r and r.startswith("bytes=") for r in ranges)
    assert hub.served[sha(data)] == len(data)
    assert t.done_bytes() == len(data) + len(small)


def test_a_cancelled_download_resumes_where_it_stopped(hub: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(6 * MiB)
    hub.add_hf("org/big", {"w.gguf": data})
    hub.rate = 8 * MiB  # slow enough to stop halfway
    hf = HuggingFace(hub.url, None)
    files = hf.snapshot("org/big", None).files
    first = fetch(hf, files, tmp_path, connections=2, cancel_after=3 * MiB)
    assert not (tmp_path / "dest/w.gguf").exists()
    kept = first.done_bytes()
    assert 3 * MiB <= kept < len(data)
    sent_before = hub.served[sha(data)]
    hub.rate = None
    second = fetch(hf, files, tmp_path, connections=2)
    assert (tmp_path / "dest/w.gguf").read_bytes() == data
    assert second.done_bytes() == len(data)
    # What was on disk was not fetched again: the second run asked for the rest only.
    assert hub.served[sha(data)] - sent_before == len(data) - kept


def test_dropped_connections_and_busy_answers_are_retried(hub: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(3 * MiB)
    repo = hub.add_hf("org/flaky", {"w.gguf": data})
    hub.fault(
        repo.files["w.gguf"],
        Fault(status=503, retry_after=0),
        Fault(status=429, retry_after=0),
        Fault(drop_after=300_000, times=2),
        Fault(status=500),
    )
    hf = HuggingFace(hub.url, None)
    fetch(hf, hf.snapshot("org/flaky", None).files, tmp_path, connections=1)
    assert (tmp_path / "dest/w.gguf").read_bytes() == data
    assert hub.served[sha(data)] == len(data)  # a dropped connection goes on from its last byte


def test_a_stalled_connection_is_dropped_and_resumed(hub: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(3 * MiB)
    repo = hub.add_hf("org/stall", {"w.gguf": data})
    hub.fault(repo.files["w.gguf"], Fault(stall=5.0))
    hf = HuggingFace(hub.url, None)
    fetch(hf, hf.snapshot("org/stall", None).files, tmp_path, stall=0.5, connections=1)
    assert (tmp_path / "dest/w.gguf").read_bytes() == data


def test_a_corrupt_file_is_fetched_again_alone(hub: FakeHub, tmp_path: Path) -> None:
    good, bad = os.urandom(MiB), os.urandom(MiB)
    repo = hub.add_hf("org/c", {"good.gguf": good, "bad.gguf": bad})
    hub.fault(repo.files["bad.gguf"], Fault(corrupt=True))
    hf = HuggingFace(hub.url, None)
    fetch(hf, hf.snapshot("org/c", None).files, tmp_path)
    assert (tmp_path / "dest/bad.gguf").read_bytes() == bad
    assert hub.served[sha(bad)] == 2 * len(bad)
    assert hub.served[sha(good)] == len(good)


def test_a_file_that_stays_corrupt_fails_and_lands_nowhere(hub: FakeHub, tmp_path: Path) -> None:
    bad = os.urandom(MiB)
    repo = hub.add_hf("org/c", {"bad.gguf": bad})
    hub.fault(repo.files["bad.gguf"], Fault(corrupt=True, times=-1))
    hf = HuggingFace(hub.url, None)
    with pytest.raises(IntegrityError, match="checksum is wrong"):
        fetch(hf, hf.snapshot("org/c", None).files, tmp_path)
    assert not (tmp_path / "dest/bad.gguf").exists()


def test_a_server_without_ranges_gets_one_stream(hub: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(4 * MiB)
    repo = hub.add_hf("org/nr", {"w.gguf": data})
    hub.fault(repo.files["w.gguf"], Fault(ignore_range=True, times=-1))
    hf = HuggingFace(hub.url, None)
    fetch(hf, hf.snapshot("org/nr", None).files, tmp_path, connections=4)
    assert (tmp_path / "dest/w.gguf").read_bytes() == data
    assert hub.served[sha(data)] == len(data)


def test_a_hub_that_keeps_failing_gives_a_clear_error(hub: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(1000)
    repo = hub.add_hf("org/down", {"w.gguf": data})
    hub.fault(repo.files["w.gguf"], Fault(status=502, retry_after=0, times=-1))
    hf = HuggingFace(hub.url, None)
    with pytest.raises(HubUnavailable, match="keeps failing"):
        fetch(hf, hf.snapshot("org/down", None).files, tmp_path, retries=2)


def test_private_and_missing_repos(hub: FakeHub, tmp_path: Path) -> None:
    data = os.urandom(1000)
    hub.add_hf("org/private", {"w.gguf": data}, private=True)
    hub.add_hf("org/gated", {"w.gguf": data}, gated=True)
    with pytest.raises(RepoNotFound) as e:
        HuggingFace(hub.url, None).snapshot("org/private", None)
    assert e.value.hint is not None
    assert "HF_TOKEN" in e.value.hint
    with pytest.raises(HubAuthRequired):
        HuggingFace(hub.url, None).snapshot("org/gated", None)
    with pytest.raises(RepoNotFound, match="revision"):
        HuggingFace(hub.url, TOKEN).snapshot("org/gated", "nope")
    with pytest.raises(RepoNotFound):
        HuggingFace(hub.url, None).snapshot("org/nothing-here", None)
    hf = HuggingFace(hub.url, TOKEN)
    fetch(hf, hf.snapshot("org/private", None).files, tmp_path)
    assert (tmp_path / "dest/w.gguf").read_bytes() == data
    resolve = [h for m, p, h in hub.requests if "/resolve/" in p]
    assert resolve
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for h in resolve)
    cdn = [h for m, p, h in hub.requests if p.startswith("/cdn/")]
    assert cdn
    assert not any("Authorization" in h for h in cdn)  # the token never leaves the hub


def test_the_hub_naming_a_file_outside_the_folder_is_refused(hub: FakeHub) -> None:
    hub.add_hf("org/evil", {"../../escape.gguf": b"x"})
    hub.add_ms("org/evil", {"/etc/evil.gguf": b"x"})
    with pytest.raises(UnsafePath):
        HuggingFace(hub.url, None).snapshot("org/evil", None)
    with pytest.raises(UnsafePath):
        ModelScope(hub.url, None).snapshot("org/evil", None)


def test_a_hub_that_cannot_be_reached(tmp_path: Path) -> None:
    with pytest.raises(HubUnavailable, match="cannot reach"):
        HuggingFace("http://127.0.0.1:9", None).snapshot("org/model", None)


def test_modelscope_search_files_and_download(hub: FakeHub, tmp_path: Path, ggufs: dict[str, bytes]) -> None:
    hub.add_ms("qwen/tiny-GGUF", {"tiny-Q8_0.gguf": ggufs["q8"], "configuration.json": b"{}"}, tags=["GGUF"])
    ms = ModelScope(hub.url, None)
    assert [h.repo for h in ms.search("tiny", category=None, gguf_only=False, limit=5)] == ["qwen/tiny-GGUF"]
    snap = ms.snapshot("qwen/tiny-GGUF", None)
    assert {f.path: f.sha256 for f in snap.files}["tiny-Q8_0.gguf"] == sha(ggufs["q8"])
    fetch(ms, snap.files, tmp_path)
    assert (tmp_path / "dest/tiny-Q8_0.gguf").read_bytes() == ggufs["q8"]
    with pytest.raises(RepoNotFound):
        ms.snapshot("qwen/missing", None)


def test_ollama_manifest_layers_and_blobs(hub: FakeHub, tmp_path: Path, ggufs: dict[str, bytes]) -> None:
    hub.add_ollama(
        "library/tiny:1b",
        {"model": ggufs["q8"], "projector": ggufs["mmproj"], "template": b"{{ .Prompt }}", "params": b"{}"},
    )
    ol = Ollama(hub.url)
    snap = ol.snapshot("library/tiny", "1b")
    assert sorted(f.path for f in snap.files) == [
        "mmproj-tiny-1b.gguf",
        "params.json",
        "template.gotmpl",
        "tiny-1b.gguf",
    ]
    fetch(ol, snap.files, tmp_path)
    assert (tmp_path / "dest/tiny-1b.gguf").read_bytes() == ggufs["q8"]
    assert (tmp_path / "dest/template.gotmpl").read_bytes() == b"{{ .Prompt }}"
    with pytest.raises(RepoNotFound, match="no tiny:latest"):
        ol.snapshot("library/tiny", None)
    with pytest.raises(Unsupported):
        ol.search("x", category=None, gguf_only=False, limit=1)
