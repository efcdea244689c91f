"""What the gateway reads off a request: the server's state, who asks (the caller's key), and
whether the prompt can fit the model's context (runtime/admission.py checks the rest)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from fastapi import Request
from starlette.datastructures import State

from modelyard.access.files import ClientFiles
from modelyard.access.keys import OPEN, Caller
from modelyard.catalog.records import Model
from modelyard.conversations import Conversations
from modelyard.errors import RequestTooLarge
from modelyard.library import Library
from modelyard.runtime.admission import Admission
from modelyard.runtime.queue import Tier
from modelyard.runtime.runtime import Runtime


def state_of(request: Request) -> State:
    """The server's state: modelyard's app's, also for a request on the Ollama listener (whose
    app holds modelyard's as ``main``)."""
    app = getattr(request.app.state, "main", request.app)
    state: State = app.state
    return state


def client_files_of(request: Request) -> ClientFiles:
    files: ClientFiles = state_of(request).client_files
    return files


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def admission_of(request: Request) -> Admission:
    admission: Admission = state_of(request).admission
    return admission


def library_of(request: Request) -> Library:
    library: Library = state_of(request).library
    return library


def conversations_of(request: Request) -> Conversations:
    conversations: Conversations = state_of(request).conversations
    return conversations


def caller_of(request: Request) -> Caller:
    caller: Caller = getattr(request.state, "caller", OPEN)
    return caller


def lower(request: Request, tier: Tier) -> None:
    """Serve the request at ``tier`` at most (a request may lower its own, never raise it)."""
    caller = caller_of(request)
    request.state.caller = replace(caller, asked=min(caller.asked, tier))


# No tokenizer puts more bytes than this in one token: a prompt of more bytes than this many
# times the context cannot fit, and is refused before it waits for (and holds) an engine.
TOKEN_BYTES = 256


def fits_context(raw: bytes, model: Model, n_ctx: int | None) -> None:
    """Refuse, before it queues, a prompt far longer than the model's context. Cheap for the
    usual request: the body is parsed only when it is that large."""
    if not n_ctx or len(raw) <= n_ctx * TOKEN_BYTES:
        return
    text = prompt_bytes(orjson.loads(raw))
    if text > n_ctx * TOKEN_BYTES:
        raise RequestTooLarge(
            f"the prompt has at least {text // TOKEN_BYTES} tokens; {model.name!r} takes {n_ctx}",
            hint="shorten it, or load the model with a larger n_ctx",
        )


def prompt_bytes(body: Any) -> int:
    """The bytes of a chat's or a completion's text (not its images)."""
    if not isinstance(body, dict):
        return 0
    prompt = body.get("prompt")
    pieces: list[Any] = [prompt] if isinstance(prompt, str) else prompt if isinstance(prompt, list) else []
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            pieces.append(content)
        elif isinstance(content, list):
            pieces += [part.get("text") for part in content if isinstance(part, dict)]
    return sum(len(p.encode()) for p in pieces if isinstance(p, str))
