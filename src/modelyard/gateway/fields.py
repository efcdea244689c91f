"""OpenAI's chat and completion fields that the gateway honours itself, made into what every
engine takes before the request is checked and sent:

- ``max_completion_tokens``: the engines' ``max_tokens``;
- ``reasoning_effort``: the chat template's thinking switch (``enable_thinking``, and the
  effort for the templates that read it), as the Responses API's ``reasoning.effort``;
- ``tool_choice`` ``allowed_tools``: the tools cut to the allowed ones, the choice its mode;
- ``prompt_cache_key``: the request's session, which routes it to the replica that served the
  session before (routing.py), not sent on;
- ``service_tier``: flex lowers the request's tier below its key's (flow control: see
  runtime/queue.py); priority and default keep the key's; not sent on;
- ``metadata``, ``safety_identifier``: accepted, not sent on (``store`` is refused: chat
  completions are not kept here).

A completion's ``suffix`` (fill-in-the-middle) goes to infill.py.

A request with none of them goes on as it came, unparsed (the hot path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from modelyard.errors import InvalidRequest
from modelyard.runtime.queue import Tier

MARKERS = (
    b'"max_completion_tokens"', b'"reasoning_effort"', b'"allowed_tools"', b'"prompt_cache_key"',
    b'"metadata"', b'"safety_identifier"', b'"store"', b'"service_tier"',
)  # fmt: skip
TIERS = {
    "auto": None,
    "default": Tier.DEFAULT,
    "scale": Tier.DEFAULT,
    "flex": Tier.FLEX,
    "priority": Tier.PRIORITY,
}
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


@dataclass
class Prepared:
    """A request as the engines take it, the session it named (prompt_cache_key), and the tier
    it asked for (service_tier; None: its key's)."""

    raw: bytes
    cache_key: str | None = None
    tier: Tier | None = None


def thinking(effort: str, param: str) -> dict[str, Any]:
    """The chat template's variables for a reasoning effort (``param``: the field that gave it)."""
    if effort not in EFFORTS:
        raise InvalidRequest(f"{param} is one of {', '.join(EFFORTS)}", param=param)
    on = effort not in ("none", "minimal")
    return {"enable_thinking": on, **({"reasoning_effort": effort} if on else {})}


def service_tier(value: Any) -> Tier | None:
    """The tier a request's ``service_tier`` asks for (None: its key's)."""
    if value is None:
        return None
    if value not in TIERS:
        raise InvalidRequest(f"service_tier is one of {', '.join(TIERS)}", param="service_tier")
    return TIERS[value]


def prepared(raw: bytes) -> Prepared:
    """``raw`` with the fields above made into the engines' (parsed only when one is there)."""
    if not any(marker in raw for marker in MARKERS):
        return Prepared(raw)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Prepared(raw)  # the schema says what is wrong with it
    if not isinstance(body, dict):
        return Prepared(raw)
    if body.pop("store", None):
        raise InvalidRequest(
            "chat completions are not stored here",
            hint="leave store out; the Responses API (/v1/responses) stores responses",
            param="store",
        )
    body.pop("metadata", None)
    body.pop("safety_identifier", None)
    if "max_completion_tokens" in body:
        most = body.pop("max_completion_tokens")
        body.setdefault("max_tokens", most)
    if "reasoning_effort" in body:
        effort = body.pop("reasoning_effort")
        if effort is not None:
            variables = thinking(str(effort), "reasoning_effort")
            body["chat_template_kwargs"] = {**variables, **(body.get("chat_template_kwargs") or {})}
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        _allow(body, choice.get("allowed_tools") or {})
    key = body.pop("prompt_cache_key", None)
    tier = service_tier(body.pop("service_tier", None))
    return Prepared(orjson.dumps(body), key if isinstance(key, str) and key else None, tier)


def _allow(body: dict[str, Any], allowed: dict[str, Any]) -> None:
    """tool_choice allowed_tools: the tools cut to those it names, the choice its mode."""
    mode = allowed.get("mode")
    if mode not in ("auto", "required"):
        raise InvalidRequest("tool_choice.allowed_tools.mode is auto or required", param="tool_choice")
    names = {(t.get("function") or {}).get("name") for t in allowed.get("tools") or [] if isinstance(t, dict)}
    tools = [t for t in body.get("tools") or [] if (t.get("function") or {}).get("name") in names]
    missing = names - {t["function"]["name"] for t in tools}
    if missing or not tools:
        raise InvalidRequest(
            f"tool_choice allows tools the request does not give: {', '.join(sorted(map(str, missing))) or 'none'}",
            param="tool_choice",
        )
    body["tools"], body["tool_choice"] = tools, mode
