"""A request's tier (flow control): its key's, lowered by the request's service_tier or its
X-Priority header, never raised."""

from __future__ import annotations

import orjson
import pytest

from modelyard.access.keys import Caller, tier_of
from modelyard.catalog.records import ApiKey
from modelyard.errors import InvalidInput, InvalidRequest
from modelyard.gateway.fields import prepared
from modelyard.runtime.queue import Tier


def key(priority: str) -> ApiKey:
    return ApiKey(name="k", prefix="my-", digest="d", scope="inference", priority=priority)


def test_a_request_lowers_its_keys_tier_and_never_raises_it() -> None:
    assert Caller(key("priority")).tier == Tier.PRIORITY
    assert Caller(key("priority"), asked=Tier.FLEX).tier == Tier.FLEX
    assert Caller(key("flex"), asked=Tier.PRIORITY).tier == Tier.FLEX
    assert Caller().tier == Tier.DEFAULT  # the local user
    with pytest.raises(InvalidInput, match="unknown priority 'urgent'"):
        tier_of("urgent")


def test_service_tier_asks_for_a_tier_and_is_not_sent_on() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "service_tier": "flex"}
    ready = prepared(orjson.dumps(body))
    assert ready.tier == Tier.FLEX
    assert "service_tier" not in orjson.loads(ready.raw)
    assert prepared(orjson.dumps({**body, "service_tier": "auto"})).tier is None
    with pytest.raises(InvalidRequest, match="service_tier is one of auto, default, scale, flex, priority"):
        prepared(orjson.dumps({**body, "service_tier": "gold"}))
