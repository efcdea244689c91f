"""Batch jobs of the Batches API: a JSONL file of requests run through the gateway at low
priority (interactive requests are served first, see runtime/queue.py), their answers written
to an output file and their failures to an error file, as OpenAI writes them.

Each answer is appended to its file the moment it comes (written through to the system), and
the catalog keeps the batch as it stands. A server that stops mid-batch resumes it when it
starts again: the requests whose answers are in the files are not sent again, those that were
in flight go once more, so that every ``custom_id`` ends in the output or the errors exactly
once. A batch not done within its completion window (24 h) expires: the requests left go to
the errors as ``batch_expired``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from modelyard.batches.files import Files
from modelyard.catalog.records import StoredBatch
from modelyard.catalog.store import Store
from modelyard.errors import BatchNotFound, FileInUse, InvalidRequest

log = logging.getLogger(__name__)

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
WINDOW = "24h"
WINDOW_SECONDS = 24 * 3600
MOST = 50_000  # requests in one batch
ERRORS_SHOWN = 100  # of an input's faults, those listed in the failed batch
IN_FLIGHT = 16  # a batch's requests sent or waiting for a slot at once
SAVE_EVERY = 1.0  # seconds between two writes of a running batch's counts to the catalog
UNFINISHED = ("validating", "in_progress", "finalizing", "cancelling")
EXPIRED = "This request could not be executed before the completion window expired."

# how a request is sent: (the account it acts for, the endpoint, the body) -> (status, answer)
Send = Callable[[str | None, str, bytes], Awaitable[tuple[int, bytes]]]


@dataclass(frozen=True)
class Request:
    """One line of a batch's input."""

    custom_id: str
    body: dict[str, Any]


class InvalidInput(Exception):
    """A batch's input file has faults: the batch fails with them."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors


def read_input(path: Path, endpoint: str) -> list[Request]:
    """The requests of an input file; InvalidInput with its faults, each naming its line."""
    errors: list[dict[str, Any]] = []
    requests: list[Request] = []
    seen: set[str] = set()

    def fault(line: int, message: str, param: str | None = None) -> None:
        errors.append({"code": "invalid_request", "message": message, "param": param, "line": line})

    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                item = orjson.loads(raw)
            except orjson.JSONDecodeError:
                fault(n, "the line is not JSON")
                continue
            if not isinstance(item, dict):
                fault(n, "the line is not a JSON object")
                continue
            cid, body = item.get("custom_id"), item.get("body")
            if not isinstance(cid, str) or not cid:
                fault(n, "custom_id is missing (a string that names the request)", "custom_id")
            elif cid in seen:
                fault(n, f"custom_id {cid!r} is used twice: each request needs its own", "custom_id")
            if item.get("method") != "POST":
                fault(n, "method must be POST", "method")
            if item.get("url") != endpoint:
                fault(n, f"url must be the batch's endpoint, {endpoint}", "url")
            if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                fault(n, "body must be an object naming its model", "body")
            elif body.get("stream") or body.get("background"):
                fault(n, "a batch's requests are answered whole: no stream or background", "body")
            if isinstance(cid, str) and cid and isinstance(body, dict):
                seen.add(cid)
                requests.append(Request(cid, body))
    if not requests and not errors:
        errors.append(
            {"code": "empty_file", "message": "the input file has no requests", "param": None, "line": None}
        )
    if len(requests) > MOST:
        errors.append({"code": "too_many_requests", "message": f"a batch takes {MOST} requests at most",
                       "param": None, "line": None})  # fmt: skip
    if errors:
        raise InvalidInput(errors[:ERRORS_SHOWN])
    return requests


def _usage(body: dict[str, Any]) -> tuple[int, int, int, int]:
    """Tokens in, out, cached and of reasoning of one answer (chat, completions, embeddings or
    Responses)."""
    used = body.get("usage") or {}
    if not isinstance(used, dict):
        return 0, 0, 0, 0
    given = int(used.get("input_tokens") or used.get("prompt_tokens") or 0)
    made = int(used.get("output_tokens") or used.get("completion_tokens") or 0)
    cached = (used.get("input_tokens_details") or used.get("prompt_tokens_details") or {}).get(
        "cached_tokens"
    ) or 0
    reasoning = (used.get("output_tokens_details") or used.get("completion_tokens_details") or {}).get(
        "reasoning_tokens"
    ) or 0
    return given, made, int(cached), int(reasoning)


@dataclass
class Progress:
    """What a batch's result files hold: the ids answered, and the counts and tokens so far."""

    done: set[str]
    completed: int = 0
    failed: int = 0
    tokens: tuple[int, int, int, int] = (0, 0, 0, 0)

    def add(self, record: dict[str, Any], ok: bool) -> None:
        self.done.add(record["custom_id"])
        if ok:
            self.completed += 1
            used = _usage(record["response"]["body"])
            self.tokens = tuple(a + b for a, b in zip(self.tokens, used, strict=True))  # type: ignore[assignment]
        else:
            self.failed += 1


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """The whole lines of a result file; a last line cut short (the server stopped as it wrote
    it) is cut off."""
    if not path.exists():
        return
    with path.open("r+b") as f:
        whole = 0
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            whole += len(raw)
            yield orjson.loads(raw)
        f.truncate(whole)


class Batches:
    def __init__(self, store: Store, files: Files, send: Send, now: Callable[[], float] = time.time) -> None:
        self.store = store
        self.files = files
        self.send = send
        self.now = now
        # the batches that run, by id: the task that runs each, and the batch as it stands
        self.running: dict[str, tuple[asyncio.Task[None], dict[str, Any]]] = {}
        self.closing = False

    @property
    def folder(self) -> Path:
        """Where running batches write their results."""
        return self.files.folder / "running"

    def _results(self, bid: str) -> tuple[Path, Path]:
        return self.folder / f"{bid}.output.jsonl", self.folder / f"{bid}.errors.jsonl"

    async def create(
        self, account: str | None, input_file_id: str, endpoint: str, window: str,
        metadata: dict[str, str] | None = None, output_expires_after: int | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """A new batch of the requests in ``input_file_id``, validating: it runs as a task."""
        if endpoint not in ENDPOINTS:
            raise InvalidRequest(f"batches run {', '.join(ENDPOINTS)}, not {endpoint}", param="endpoint")
        if window != WINDOW:
            raise InvalidRequest(f"the completion window is {WINDOW}", param="completion_window")
        source = await self.files.get(input_file_id, account)
        if source.purpose != "batch":
            raise InvalidRequest(
                f"{input_file_id!r} was uploaded for {source.purpose!r}: a batch reads files of purpose batch",
                param="input_file_id",
            )
        now = int(self.now())
        tag = uuid.uuid4().hex
        batch: dict[str, Any] = {
            "id": f"batch_{tag}", "object": "batch", "endpoint": endpoint, "errors": None,
            "input_file_id": input_file_id, "completion_window": window, "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
            "expires_at": now + WINDOW_SECONDS, "finalizing_at": None, "completed_at": None, "failed_at": None,
            "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": metadata, "usage": None,
            # not OpenAI's: the ids its output and error files get, and how long those are kept
            "modelyard": {"output": f"file-{tag}o", "errors": f"file-{tag}e", "keep": output_expires_after},
        }  # fmt: skip
        await asyncio.to_thread(self.store.put_batch, StoredBatch(batch["id"], account or "", batch))
        self._start(account or "", batch)
        return _shown(batch)

    def _start(self, account: str, batch: dict[str, Any], after: Awaitable[None] | None = None) -> None:
        self.running[batch["id"]] = (asyncio.create_task(self._run(account, batch, after)), batch)

    async def get(self, bid: str, account: str | None, *, anyone: bool = False) -> dict[str, Any]:
        """The batch ``bid`` of ``account`` (``anyone``: of any key, for an admin)."""
        return _shown((await self._stored(bid, None if anyone else account or "")).batch)

    async def _stored(self, bid: str, account: str | None) -> StoredBatch:
        found = await asyncio.to_thread(self.store.get_batch, bid, account)
        if found is None:
            raise BatchNotFound(bid)
        return found

    async def listing(self, account: str | None, *, anyone: bool = False) -> list[tuple[str, dict[str, Any]]]:
        """The batches of ``account`` (``anyone``: everyone's) with the key that made each (""
        for the local user), the newest first."""
        found = await asyncio.to_thread(self.store.batches, None if anyone else account or "")
        return [(b.account, _shown(b.batch)) for b in found]

    async def check_unused(self, fid: str) -> None:
        """FileInUse when a batch that has not finished reads ``fid``."""
        for stored in await asyncio.to_thread(self.store.batches, None, UNFINISHED):
            if stored.batch["input_file_id"] == fid:
                raise FileInUse(
                    f"the batch {stored.id!r} reads {fid!r}",
                    hint=f"wait for it to finish, or cancel it: POST /v1/batches/{stored.id}/cancel",
                )

    async def cancel(self, bid: str, account: str | None, *, anyone: bool = False) -> dict[str, Any]:
        """Stop a batch: what it answered stays in its output file; it ends cancelled."""
        stored = await self._stored(bid, None if anyone else account or "")
        batch = stored.batch
        if batch["status"] not in UNFINISHED:
            raise InvalidRequest(
                f"the batch {bid!r} is {batch['status']}: only a batch that runs can be cancelled"
            )
        task, batch = self.running.get(bid, (None, batch))
        if batch["status"] != "cancelling":
            batch.update(status="cancelling", cancelling_at=int(self.now()))
            await self._save(batch)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        else:
            await self._finish(stored.account, batch, "cancelled")
        return _shown((await self._stored(bid, None)).batch)

    async def recover(self, after: Awaitable[None] | None = None) -> None:
        """Go on with the batches a stopped server left unfinished, once ``after`` is done (the
        models they ask for are loaded again)."""
        ready = None if after is None else asyncio.ensure_future(after)
        for stored in await asyncio.to_thread(self.store.batches, None, UNFINISHED):
            log.info("resuming batch %s (%s)", stored.id, stored.batch["status"])
            if stored.batch["status"] == "cancelling":
                await self._finish(stored.account, stored.batch, "cancelled")
            else:
                self._start(stored.account, stored.batch, ready)

    async def close(self) -> None:
        """Stop the running batches where they are: they go on when the server starts again."""
        self.closing = True
        tasks = [task for task, _ in self.running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _save(self, batch: dict[str, Any]) -> None:
        await asyncio.to_thread(self.store.update_batch, batch["id"], batch)

    async def _run(self, account: str, batch: dict[str, Any], after: Awaitable[None] | None) -> None:
        try:
            if after is not None:
                await asyncio.shield(after)
            await self._go(account, batch)
        except asyncio.CancelledError:
            if not self.closing:  # cancelled by its owner: done with what it has
                await self._finish(account, batch, "cancelled")
        except Exception as e:
            log.exception("batch %s failed", batch["id"])
            batch["errors"] = {"object": "list", "data": [
                {"code": "server_error", "message": f"the batch failed: {e.__class__.__name__}: {e}",
                 "param": None, "line": None}]}  # fmt: skip
            batch.update(status="failed", failed_at=int(self.now()))
            await self._save(batch)
        finally:
            self.running.pop(batch["id"], None)

    async def _go(self, account: str, batch: dict[str, Any]) -> None:
        try:
            requests = await asyncio.to_thread(
                read_input, self.files.path(batch["input_file_id"]), batch["endpoint"]
            )
        except InvalidInput as e:
            batch["errors"] = {"object": "list", "data": e.errors}
            batch.update(status="failed", failed_at=int(self.now()))
            await self._save(batch)
            return
        except FileNotFoundError:
            batch["errors"] = {"object": "list", "data": [{"code": "missing_file", "param": "input_file_id",
                               "message": "the input file was deleted", "line": None}]}  # fmt: skip
            batch.update(status="failed", failed_at=int(self.now()))
            await self._save(batch)
            return
        if batch["status"] == "validating":
            batch.update(status="in_progress", in_progress_at=int(self.now()))
        batch["request_counts"]["total"] = len(requests)
        await self._save(batch)
        if batch["status"] == "in_progress":
            await self._answer(account, batch, requests)
        await self._finish(account, batch, "expired" if self.now() >= batch["expires_at"] else "completed")

    async def _answer(self, account: str, batch: dict[str, Any], requests: list[Request]) -> None:
        """Send the requests not yet answered, IN_FLIGHT at a time, each answer appended to its
        file as it comes."""
        self.folder.mkdir(parents=True, exist_ok=True)
        outputs, errors = self._results(batch["id"])
        progress = await asyncio.to_thread(self._progress, batch["id"])
        left = iter([r for r in requests if r.custom_id not in progress.done])
        saved = self.now()
        with outputs.open("ab") as out, errors.open("ab") as err:

            def write(record: dict[str, Any], ok: bool) -> None:
                handle: IO[bytes] = out if ok else err
                handle.write(orjson.dumps(record) + b"\n")
                handle.flush()  # to the system: a server that stops now does not lose it
                progress.add(record, ok)

            async def worker() -> None:
                nonlocal saved
                for request in left:
                    if self.now() >= batch["expires_at"]:
                        write(_failure(request, "batch_expired", EXPIRED), False)
                        continue
                    write(*await self._one(account, batch["endpoint"], request))
                    _count(batch, progress)
                    if self.now() - saved >= SAVE_EVERY:
                        saved = self.now()
                        await self._save(batch)

            await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        _count(batch, progress)

    async def _one(self, account: str, endpoint: str, request: Request) -> tuple[dict[str, Any], bool]:
        """A request's record for the output file (and True), or for the errors."""
        try:
            status, answer = await self.send(account or None, endpoint, orjson.dumps(request.body))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("a request of a batch failed")
            return _failure(request, "server_error", f"the request failed: {e.__class__.__name__}"), False
        try:
            body = orjson.loads(answer)
        except orjson.JSONDecodeError:
            body = {"error": {"message": answer.decode(errors="replace")[:1000]}}
        record = {
            "id": f"batch_req_{uuid.uuid4().hex}", "custom_id": request.custom_id,
            "response": {"status_code": status, "request_id": f"req_{uuid.uuid4().hex}", "body": body}, "error": None,
        }  # fmt: skip
        return record, status == 200

    def _progress(self, bid: str) -> Progress:
        progress = Progress(set())
        outputs, errors = self._results(bid)
        for record in _records(outputs):
            progress.add(record, True)
        for record in _records(errors):
            progress.add(record, False)
        return progress

    async def _finish(self, account: str, batch: dict[str, Any], status: str) -> None:
        """Keep what the batch wrote as its output and error files; it ends ``status``."""
        batch.update(status="finalizing", finalizing_at=batch["finalizing_at"] or int(self.now()))
        await self._save(batch)
        progress = await asyncio.to_thread(self._progress, batch["id"])
        _count(batch, progress)
        ids = batch["modelyard"]
        expires = datetime.now(UTC) + timedelta(seconds=ids["keep"]) if ids.get("keep") else None
        for written, fid, field, name in zip(
            self._results(batch["id"]), (ids["output"], ids["errors"]), ("output_file_id", "error_file_id"),
            ("output", "errors"), strict=True,
        ):  # fmt: skip
            if batch[field] is not None:
                continue
            if not written.exists() and not self.files.path(fid).exists():
                continue
            size = await asyncio.to_thread(self.files.kept, fid, written)
            if size:
                await self.files.add(
                    account, fid, f"{batch['id']}_{name}.jsonl", "batch_output", size, expires
                )
                batch[field] = fid
            else:
                await asyncio.to_thread(self.files.path(fid).unlink)
        batch.update({"status": status, f"{status}_at": int(self.now())})
        await self._save(batch)


def _count(batch: dict[str, Any], progress: Progress) -> None:
    batch["request_counts"].update(completed=progress.completed, failed=progress.failed)
    given, made, cached, reasoning = progress.tokens
    batch["usage"] = {
        "input_tokens": given, "input_tokens_details": {"cached_tokens": cached}, "output_tokens": made,
        "output_tokens_details": {"reasoning_tokens": reasoning}, "total_tokens": given + made,
    }  # fmt: skip


def _failure(request: Request, code: str, message: str) -> dict[str, Any]:
    return {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": request.custom_id, "response": None,
            "error": {"code": code, "message": message}}  # fmt: skip


def _shown(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch as the Batches API shows it (without modelyard's own field)."""
    return {k: v for k, v in batch.items() if k != "modelyard"}
