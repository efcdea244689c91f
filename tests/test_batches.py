"""A batch job stopped halfway (the server stopped) goes on where it was when the next server
starts: every custom_id ends in its output or its errors exactly once, and no request whose
answer was written is sent again; a line the stop cut short is written again whole. Past its
completion window, what is left fails as batch_expired."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import orjson
import pytest

from modelyard.batches.files import Files
from modelyard.batches.jobs import Batches
from modelyard.catalog.store import Store

pytestmark = pytest.mark.unit
N = 40


def lines(n: int) -> bytes:
    def line(i: int) -> dict[str, object]:
        body = {"model": "m", "input": f"text {i}"}
        return {"custom_id": f"r{i}", "method": "POST", "url": "/v1/embeddings", "body": body}

    return b"".join(orjson.dumps(line(i)) + b"\n" for i in range(n))


class Engine:
    """Answers each request after a pause; every odd one with a 400. ``sent``: the inputs it got."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def __call__(self, account: str | None, endpoint: str, body: bytes) -> tuple[int, bytes]:
        text = orjson.loads(body)["input"]
        self.sent.append(text)
        await asyncio.sleep(0.01)
        if int(text.split()[1]) % 2:
            return 400, b'{"error": {"message": "odd", "type": "invalid_request_error"}}'
        return 200, orjson.dumps({"data": [], "usage": {"prompt_tokens": 3, "total_tokens": 3}})


async def upload(files: Files, data: bytes, path: Path) -> str:
    path.write_bytes(data)
    with path.open("rb") as f:
        return (await files.upload("ann", "in.jsonl", "batch", f)).id


def test_a_batch_goes_on_after_a_stop_and_answers_each_request_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'catalog.db'}")
    files = Files(store, tmp_path / "files", max_bytes=1 << 20)
    first, second = Engine(), Engine()

    async def before_the_stop() -> str:
        batches = Batches(store, files, first)
        fid = await upload(files, lines(N), tmp_path / "in.jsonl")
        batch = await batches.create("ann", fid, "/v1/embeddings", "24h")
        while len(first.sent) < N // 2:
            await asyncio.sleep(0.005)
        await batches.close()  # the server stops: the requests in flight are not written
        return str(batch["id"])

    bid = asyncio.run(before_the_stop())
    running = tmp_path / "files" / "running"
    written = (running / f"{bid}.output.jsonl").read_bytes()
    (running / f"{bid}.output.jsonl").write_bytes(written + written.splitlines(True)[0][:20])  # cut short
    answered = {
        orjson.loads(line)["custom_id"]
        for f in running.iterdir()
        for line in f.read_bytes().splitlines()[:-1]
    }
    assert store.get_batch(bid, "ann").batch["status"] == "in_progress"  # type: ignore[union-attr]

    async def after_it() -> dict[str, object]:
        batches = Batches(store, files, second)
        await batches.recover()
        while batches.running:
            await asyncio.sleep(0.01)
        return await batches.get(bid, "ann")

    batch = asyncio.run(after_it())
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": N, "completed": N // 2, "failed": N // 2}
    assert batch["usage"]["input_tokens"] == 3 * N // 2  # type: ignore[index]
    out = [orjson.loads(line) for line in files.path(str(batch["output_file_id"])).read_bytes().splitlines()]
    err = [orjson.loads(line) for line in files.path(str(batch["error_file_id"])).read_bytes().splitlines()]
    ids = Counter(r["custom_id"] for r in out + err)
    assert ids == Counter(f"r{i}" for i in range(N))  # each once, none lost
    assert {r["custom_id"] for r in out} == {f"r{i}" for i in range(0, N, 2)}
    assert all(r["response"]["status_code"] == 400 and r["error"] is None for r in err)
    assert not set(second.sent) & {f"text {cid[1:]}" for cid in answered}  # none sent twice
    assert not any(running.iterdir())  # moved into the output and error files


def test_what_is_left_past_the_completion_window_fails_as_expired(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'catalog.db'}")
    files = Files(store, tmp_path / "files", max_bytes=1 << 20)
    now = [1_000_000.0]
    engine = Engine()

    async def run() -> dict[str, object]:
        batches = Batches(store, files, engine, now=lambda: now[0])
        fid = await upload(files, lines(4), tmp_path / "in.jsonl")
        bid = (await batches.create("ann", fid, "/v1/embeddings", "24h"))["id"]
        await batches.close()  # stopped before it began; it starts again a day later
        now[0] += 24 * 3600
        batches = Batches(store, files, engine, now=lambda: now[0])
        await batches.recover()
        while batches.running:
            await asyncio.sleep(0.01)
        return await batches.get(bid, "ann")

    batch = asyncio.run(run())
    assert batch["status"] == "expired"
    assert batch["expired_at"] == 1_000_000 + 24 * 3600
    assert batch["output_file_id"] is None
    errors = [
        orjson.loads(line) for line in files.path(str(batch["error_file_id"])).read_bytes().splitlines()
    ]
    assert [e["error"]["code"] for e in errors] == ["batch_expired"] * 4
    assert engine.sent == []
