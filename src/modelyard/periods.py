"""Spans of time as users write them (``12h``, ``30d``, ``2w``, a date) and the calendar
periods quotas renew on (a day, a week, a month, in UTC)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from modelyard.errors import InvalidInput

DURATION = re.compile(r"^(\d+)([hdw])\Z")
PERIODS = ("day", "week", "month", "total")


def duration(text: str) -> timedelta | None:
    """``12h``, ``30d`` or ``2w`` as a timedelta; None when ``text`` is not one."""
    m = DURATION.match(text)
    if not m:
        return None
    amount, unit = int(m.group(1)), m.group(2)
    return timedelta(hours=amount * {"h": 1, "d": 24, "w": 24 * 7}[unit])


def moment(text: str, what: str) -> datetime:
    """A date (``2027-01-31``) or a time in ISO 8601, in UTC when it names no zone."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not a {what}", hint="use a duration (12h, 30d, 2w) or a date (2027-01-31)"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def since(text: str, now: datetime) -> datetime:
    """The start of ``--since TEXT``: a duration back from ``now`` (``24h``, ``7d``) or a date."""
    span = duration(text)
    return now - span if span is not None else moment(text, "time")


def period_start(period: str, now: datetime) -> datetime | None:
    """When the quota period holding ``now`` began (weeks start on Monday); None for total."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return None


def period_end(period: str, now: datetime) -> datetime | None:
    """When the quota period holding ``now`` ends (and renews); None for total."""
    start = period_start(period, now)
    if start is None:
        return None
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(weeks=1)
    return (start + timedelta(days=32)).replace(day=1)
