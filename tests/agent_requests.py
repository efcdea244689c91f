"""What the agents conformance tests ask of every engine: tools, schemas, and the check that a
tool call is valid."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 20}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city", "days"],
    "additionalProperties": False,
}  # fmt: skip
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "description": "the forecast", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "description": "the time now",
                                      "parameters": {"type": "object", "properties": {}}}},
]  # fmt: skip
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "maxItems": 3},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}
ASK = [{"role": "user", "content": "What is the weather in Paris for three days?"}]


def valid_calls(calls: list[Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """(name, arguments) of each call, each checked against its function's schema."""
    assert calls, "no tool calls"
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    out = []
    for call in calls:
        assert call.type == "function"
        assert call.id
        arguments = json.loads(call.function.arguments)
        jsonschema.validate(arguments, schemas[call.function.name])
        out.append((call.function.name, arguments))
    return out
