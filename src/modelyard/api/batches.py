"""Routes of the batches of every key, for the web UI and the CLI (an admin's view; /v1/batches
shows a key its own)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from modelyard.api.routing import StrictRoute
from modelyard.gateway.batches import batches_of
from modelyard.http_errors import ErrorBody
from modelyard.usage.meter import LOCAL

router = APIRouter(
    route_class=StrictRoute,
    prefix="/api",
    tags=["batches"],
    responses={c: {"model": ErrorBody} for c in (400, 401, 403, 404)},
)


class BatchOut(BaseModel):
    id: str
    key: str = Field(description='the key that made it ("local": without keys)')
    endpoint: str
    status: str = Field(
        description="validating, in_progress, finalizing, completed, failed, expired, cancelling, cancelled"
    )
    created_at: int
    ended_at: int | None = Field(description="when it completed, failed, expired or was cancelled")
    total: int
    completed: int
    failed: int
    input_file_id: str
    output_file_id: str | None
    error_file_id: str | None
    errors: list[str] = Field(description="why its input was refused")

    @classmethod
    def of(cls, key: str, b: dict[str, Any]) -> BatchOut:
        counts = b["request_counts"]
        ended = [b.get(f"{s}_at") for s in ("completed", "failed", "expired", "cancelled")]
        return cls(
            id=b["id"], key=key or LOCAL, endpoint=b["endpoint"], status=b["status"], created_at=b["created_at"],
            ended_at=next((t for t in ended if t), None), total=counts["total"], completed=counts["completed"],
            failed=counts["failed"], input_file_id=b["input_file_id"], output_file_id=b["output_file_id"],
            error_file_id=b["error_file_id"],
            errors=[f"line {e['line']}: {e['message']}" if e.get("line") else e["message"]
                    for e in (b.get("errors") or {}).get("data") or []],
        )  # fmt: skip


@router.get("/batches")
async def list_batches(request: Request) -> list[BatchOut]:
    """Every key's batches, the newest first."""
    return [BatchOut.of(key, b) for key, b in await batches_of(request).listing(None, anyone=True)]


@router.post("/batches/{bid}/cancel")
async def cancel_batch(request: Request, bid: str) -> BatchOut:
    """Stop a batch, whoever made it; what it answered stays in its output file."""
    batches = batches_of(request)
    await batches.cancel(bid, None, anyone=True)
    ((key, batch),) = [(k, b) for k, b in await batches.listing(None, anyone=True) if b["id"] == bid]
    return BatchOut.of(key, batch)
