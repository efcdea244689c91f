"""A 1 GiB file from a fake hub on 127.0.0.1: modelyard's downloader against huggingface_hub's
hf_hub_download, then a modelyard server killed with SIGKILL halfway and started again.

Prints: each side's seconds and throughput, the resume's extra bytes, and the ratio last.
Usage: python bench/download.py [--size-mib 1024] [--runs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from common import ROOT, free_port, wait_http

REPO = "bench/big-GGUF"


def make_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    block = 64 << 20
    with path.open("wb") as f:
        left = size
        while left:
            data = os.urandom(min(block, left))
            h.update(data)
            f.write(data)
            left -= len(data)
    return h.hexdigest()


def start_hub(path: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fakehub.py"), str(path), REPO],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    wait_http(url + "/_served")
    return proc, url


def served(url: str, sha: str) -> int:
    return int(httpx.get(url + "/_served").json().get(sha, 0))


def peer(url: str, name: str, work: Path) -> float:
    from huggingface_hub import hf_hub_download

    cache = work / "hf-cache"
    t0 = time.perf_counter()
    got = hf_hub_download(REPO, name, cache_dir=cache, endpoint=url, token=False)
    seconds = time.perf_counter() - t0
    assert Path(got).stat().st_size > 0
    subprocess.run(["rm", "-rf", str(cache)], check=True)
    return seconds


def ours(url: str, work: Path) -> float:
    from modelyard.hub.huggingface import HuggingFace
    from modelyard.hub.transfer import Transfer, client_session

    async def go() -> float:
        t0 = time.perf_counter()
        hf = HuggingFace(url, None)
        snap = await asyncio.to_thread(hf.snapshot, REPO, None)
        async with client_session(30.0) as session:
            await Transfer(session, hf, snap.files, work=work / "work", dest=work / "dest").run()
        return time.perf_counter() - t0

    seconds = asyncio.run(go())
    subprocess.run(["rm", "-rf", str(work / "work"), str(work / "dest")], check=True)
    return seconds


def killed_and_resumed(url: str, sha: str, size: int, work: Path) -> tuple[int, bool, float]:
    """A server pulls the file; SIGKILL at 50%; a new server finishes it. Returns the bytes the hub
    sent for the job, whether the result's sha256 is right, and where the kill landed."""
    home = work / "home"
    port = free_port()
    env = {**os.environ, "MODELYARD_HOME": str(home), "MODELYARD_PORT": str(port), "HF_ENDPOINT": url}
    api = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelyard.cli.main", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(api + "/api/health")
        return proc

    before = served(url, sha)
    proc = start()
    job = httpx.post(f"{api}/api/downloads", json={"ref": REPO, "all": True}, timeout=60).json()
    with httpx.Client(base_url=api, timeout=10) as http:
        while (done := http.get(f"/api/downloads/{job['id']}").json()["bytes_done"]) < size // 2:
            time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at = done / size
    sent_before = served(url, sha) - before
    record = json.loads((home / "downloads" / str(job["id"]) / "progress.json").read_text())
    kept = sum(p["written"] for f in record["files"] for p in f["pieces"])
    print(
        f"at the kill: the hub had sent {sent_before / 2**20:.1f} MiB, the record kept {kept / 2**20:.1f} MiB",
        flush=True,
    )
    proc = start()
    try:
        with httpx.Client(base_url=api, timeout=10) as http:
            while (state := http.get(f"/api/downloads/{job['id']}").json())["state"] not in (
                "completed",
                "failed",
            ):
                time.sleep(0.1)
        assert state["state"] == "completed", state
        h = hashlib.sha256()
        with (Path(state["destination"]) / "big.gguf").open("rb") as f:
            while block := f.read(16 << 20):
                h.update(block)
        return served(url, sha) - before, h.hexdigest() == sha, at
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    size = args.size_mib << 20
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        work = Path(tmp)
        path = work / "big.gguf"
        sha = make_file(path, size)
        hub, url = start_hub(path)
        try:
            theirs_s, ours_s = [], []
            for _ in range(args.runs):  # alternate, so both see the same page cache and CPU
                theirs_s.append(peer(url, path.name, work))
                ours_s.append(ours(url, work))
            extra, right, at = killed_and_resumed(url, sha, size, work)
        finally:
            hub.terminate()
            hub.wait(10)
    t, o = statistics.median(theirs_s), statistics.median(ours_s)
    mib = size / 2**20
    print(f"file: {mib:.0f} MiB from the fake hub on 127.0.0.1, {args.runs} runs each, medians")
    print(
        f"hf_hub_download: {t:.2f} s ({mib / t:.0f} MiB/s)  runs: {', '.join(f'{s:.2f}' for s in theirs_s)}"
    )
    print(f"modelyard:       {o:.2f} s ({mib / o:.0f} MiB/s)  runs: {', '.join(f'{s:.2f}' for s in ours_s)}")
    print(
        f"kill -9 at {at:.0%}, resumed: the hub sent {extra / 2**20:.1f} MiB for a {mib:.0f} MiB file "
        f"(+{100 * (extra - size) / size:.2f}%, goal <= 1%); sha256 {'right' if right else 'WRONG'}"
    )
    print(f"ratio: {t / o:.2f}x (modelyard throughput / hf_hub_download's; goal >= 1.0x)")


if __name__ == "__main__":
    main()
