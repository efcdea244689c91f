"""Routes of usage and quotas: tokens, requests, images and loads per model or key over a span
(with the hourly series the web UI charts), and the quotas on loads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from modelyard.api.routing import StrictRoute
from modelyard.catalog.records import Quota
from modelyard.http_errors import ErrorBody
from modelyard.periods import since as since_of
from modelyard.usage.meter import Meter, Total, hourly, totals
from modelyard.usage.quotas import Quotas, Standing

router = APIRouter(
    route_class=StrictRoute,
    prefix="/api",
    tags=["usage"],
    responses={c: {"model": ErrorBody} for c in (400, 401, 403, 404)},
)


class TotalOut(BaseModel):
    name: str = Field(description='the model, the key ("local": without keys) or the hour')
    requests: int
    tokens_in: int
    tokens_out: int
    images: int
    loads: int = Field(description="loads that counted against a quota")

    @classmethod
    def of(cls, t: Total) -> TotalOut:
        return cls(name=t.name, requests=t.requests, tokens_in=t.tokens_in, tokens_out=t.tokens_out,
                   images=t.images, loads=t.loads)  # fmt: skip


class UsageOut(BaseModel):
    since: datetime
    by: str
    totals: list[TotalOut] = Field(description="per model or key, the busiest first")
    hours: list[TotalOut] = Field(description="per hour (named by its start, UTC), oldest first")


class QuotaIn(BaseModel):
    loads: int = Field(ge=0, description="quota-counted loads allowed per period")
    period: Literal["day", "week", "month", "total"] = "day"


class QuotaOut(BaseModel):
    key: str = Field(description='a key\'s name, or "*": every key without its own')
    loads: int
    period: str

    @classmethod
    def of(cls, q: Quota) -> QuotaOut:
        return cls(key=q.key, loads=q.loads, period=q.period)


class StandingOut(BaseModel):
    key: str
    quota: str = Field(description='whose quota applies: the key\'s own, or "*"')
    loads: int
    period: str
    used: int
    left: int
    renews: datetime | None

    @classmethod
    def of(cls, s: Standing) -> StandingOut:
        return cls(key=s.key, quota=s.quota, loads=s.loads, period=s.period, used=s.used, left=s.left,
                   renews=s.renews)  # fmt: skip


class QuotasOut(BaseModel):
    quotas: list[QuotaOut]
    standings: list[StandingOut] = Field(description="where each key stands against its quota")


def meter_of(request: Request) -> Meter:
    meter: Meter = request.app.state.meter
    return meter


def quotas_of(request: Request) -> Quotas:
    quotas: Quotas = request.app.state.quotas
    return quotas


@router.get("/usage")
def usage(
    request: Request,
    since: str = Query("7d", description="a span back from now (24h, 7d, 2w) or a date"),
    by: Literal["model", "key"] = "model",
    key: str | None = Query(None, description="only this key's usage"),
) -> UsageOut:
    """Usage from ``since`` on, added up per model or per key, and per hour."""
    start = since_of(since, datetime.now(UTC))
    rows = meter_of(request).usage(start, key)
    return UsageOut(
        since=start, by=by, totals=[TotalOut.of(t) for t in totals(rows, by)],
        hours=[TotalOut.of(t) for t in hourly(rows)],
    )  # fmt: skip


@router.get("/quotas")
def list_quotas(request: Request) -> QuotasOut:
    quotas = quotas_of(request)
    return QuotasOut(
        quotas=[QuotaOut.of(q) for q in quotas.store.quotas()],
        standings=[StandingOut.of(s) for s in quotas.standings()],
    )


@router.put("/quotas/{key}")
def set_quota(request: Request, key: str, body: QuotaIn) -> QuotaOut:
    """Set the quota of ``key`` ("*": of every key without its own)."""
    return QuotaOut.of(quotas_of(request).set(key, body.loads, body.period))


@router.delete("/quotas/{key}", status_code=204)
def remove_quota(request: Request, key: str) -> None:
    quotas_of(request).remove(key)
