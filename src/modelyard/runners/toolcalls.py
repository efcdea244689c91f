"""Tool calls in a transformers model's own format, read out of its text: the chat template says
which family it is (Hermes / Qwen ``<tool_call>{...}</tool_call>``, Mistral ``[TOOL_CALLS][...]``,
Llama 3's bare JSON ``{"name", "parameters"}``). While a stream is generated, text that may begin
a call is held back until it is known, so a call never reaches ``content``."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

HERMES, MISTRAL, LLAMA3 = "hermes", "mistral", "llama3"
_HERMES_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def family_of(template: str | None) -> str:
    """The tool-call format a chat template teaches its model."""
    text = template or ""
    if "[TOOL_CALLS]" in text:
        return MISTRAL
    if "<tool_call>" in text:
        return HERMES
    if "<|python_tag|>" in text or ("ipython" in text and "parameters" in text):
        return LLAMA3
    return HERMES


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI's messages as chat templates take them: a call's arguments as an object, not the
    JSON string OpenAI sends."""
    out = []
    for m in messages:
        calls = m.get("tool_calls") if isinstance(m, dict) else None
        if calls:
            m = {**m, "tool_calls": [_with_object_arguments(c) for c in calls]}
        out.append(m)
    return out


def _with_object_arguments(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            args = {}
    return {**call, "function": {**fn, "arguments": args if isinstance(args, dict) else {}}}


def _call(name: Any, arguments: Any) -> dict[str, Any] | None:
    if not isinstance(name, str) or not name:
        return None
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return {
        "id": "call_" + secrets.token_hex(12),
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


def _json_calls(text: str, arguments_key: str) -> list[dict[str, Any]] | None:
    """One call or a list of calls as JSON; None when ``text`` is not that."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    items = parsed if isinstance(parsed, list) else [parsed]
    calls = []
    for item in items:
        if not isinstance(item, dict):
            return None
        call = _call(item.get("name"), item.get(arguments_key, item.get("arguments")))
        if call is None:
            return None
        calls.append(call)
    return calls or None


def parse(text: str, family: str) -> tuple[str, list[dict[str, Any]]]:
    """(the content, the calls) of a finished answer. Text that looks like a call but does not
    parse stays content: nothing is lost."""
    if family == HERMES:
        start = text.find("<tool_call>")
        if start < 0:
            return text, []
        calls = []
        for body in _HERMES_CALL.findall(text[start:]):
            parsed = _json_calls(body, "arguments")
            if parsed is None:
                return text, []
            calls += parsed
        return text[:start].rstrip(), calls
    if family == MISTRAL:
        start = text.find("[TOOL_CALLS]")
        if start < 0:
            return text, []
        parsed = _json_calls(text[start + len("[TOOL_CALLS]") :].strip(), "arguments")
        return (text[:start].rstrip(), parsed) if parsed else (text, [])
    body = text.strip().removeprefix("<|python_tag|>").strip()
    if not body.startswith(("{", "[")):
        return text, []
    parsed = _json_calls(body, "parameters")
    return ("", parsed) if parsed else (text, [])


@dataclass
class Holder:
    """A stream's text, passed on as it comes except what may begin a call, which waits for the
    end (``finish``)."""

    family: str
    text: str = ""
    sent: int = 0
    _marker: str = field(init=False)

    def __post_init__(self) -> None:
        self._marker = "[TOOL_CALLS]" if self.family == MISTRAL else "<tool_call>"

    def feed(self, piece: str) -> str:
        """The part of the text so far that can go to the client now."""
        self.text += piece
        if self.family == LLAMA3:
            head = self.text.lstrip()
            if not head or head.startswith(("{", "[", "<|python_tag|>"[: len(head)])):
                return ""  # a JSON call, perhaps: held to the end
            safe = len(self.text)
        else:
            found = self.text.find(self._marker)
            safe = found if found >= 0 else len(self.text) - _partial(self.text, self._marker)
        out = self.text[self.sent : max(safe, self.sent)]
        self.sent = max(safe, self.sent)
        return out

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        """(the content not passed on yet, the calls)."""
        content, calls = parse(self.text, self.family)
        if calls:
            return content[self.sent :] if len(content) > self.sent else "", calls
        return self.text[self.sent :], []


def _partial(text: str, marker: str) -> int:
    """How many characters at the end of ``text`` begin ``marker``."""
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:k]):
            return k
    return 0
