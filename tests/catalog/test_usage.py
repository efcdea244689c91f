"""The usage meter (hourly rows in the catalog, nothing lost while it writes) and the quota
periods and standings, on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelyard.catalog.records import Model
from modelyard.catalog.store import Store
from modelyard.errors import InvalidInput, KeyNotFound, QuotaExceeded
from modelyard.periods import period_end, period_start, since
from modelyard.usage.meter import Meter, hourly, totals
from modelyard.usage.quotas import Quotas


def model(name: str, category: str) -> Model:
    return Model(name=name, category=category, format="gguf", path=f"/m/{name}.gguf")


def test_the_meter_adds_up_by_hour_model_and_key(store: Store) -> None:
    clock = [datetime(2026, 11, 30, 9, 59, tzinfo=UTC).timestamp()]
    meter = Meter(store, now=lambda: clock[0])
    meter.add("chat", None, requests=1, tokens_in=10, tokens_out=5)
    meter.add("chat", None, requests=1, tokens_in=3, tokens_out=2)
    meter.add("chat", "alice", requests=1, tokens_in=1)
    meter.flush()
    clock[0] += 120  # the next hour
    meter.add("chat", None, requests=1, tokens_out=7)
    meter.add("sd", None, requests=1, images=2)
    rows = meter.usage()  # writes what is pending first
    assert [(r.hour.hour, r.model, r.key, r.requests) for r in rows] == [
        (9, "chat", "alice", 1), (9, "chat", "local", 2), (10, "chat", "local", 1), (10, "sd", "local", 1),
    ]  # fmt: skip
    meter.add("chat", None, requests=1, tokens_in=1)
    meter.flush()  # added to the row already there
    by_model = {t.name: t for t in totals(meter.usage(), "model")}
    assert (by_model["chat"].requests, by_model["chat"].tokens_in, by_model["chat"].tokens_out) == (5, 15, 14)
    assert by_model["sd"].images == 2
    assert [t.name for t in totals(meter.usage(), "key")] == ["local", "alice"]
    assert [h.requests for h in hourly(meter.usage())] == [3, 3]
    start = datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert {r.model for r in meter.usage(start)} == {"chat", "sd"}
    assert meter.usage(start, "alice") == []


def test_periods() -> None:
    now = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # a Thursday
    assert period_start("day", now) == datetime(2026, 12, 31, tzinfo=UTC)
    assert period_end("day", now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_start("week", now) == datetime(2026, 12, 28, tzinfo=UTC)
    assert period_end("month", now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_start("total", now) is None
    assert since("7d", now) == datetime(2026, 12, 24, 23, 30, tzinfo=UTC)
    assert since("2026-12-01", now) == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="not a time"):
        since("yesterday", now)


def test_quotas_count_loads_of_the_categories_the_manual_names(store: Store) -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    meter = Meter(store, now=lambda: now.timestamp())
    quotas = Quotas(meter, now=lambda: now)
    chat, embed = model("chat", "chat"), model("embed", "embedding")
    quotas.check(None, embed)  # no quota: free
    quotas.set("*", 2, "day")
    for _ in range(2):
        quotas.check(None, embed)
        quotas.charge(None, embed)
        quotas.charge(None, chat)  # chat loads are free
    with pytest.raises(
        QuotaExceeded, match=r"used 2 of 2 loads .* this day: 0 left; it renews at 2026-12-01 00:00"
    ):
        quotas.check(None, embed)
    quotas.check(None, chat)
    standing = quotas.standing(None)
    assert standing is not None
    assert (standing.used, standing.left, standing.quota) == (2, 0, "*")
    with pytest.raises(KeyNotFound):
        quotas.set("nobody", 1, "day")
    with pytest.raises(InvalidInput, match="unknown quota period"):
        quotas.set("*", 1, "year")
