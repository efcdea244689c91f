"""Routes of the API keys (admin keys only, like all of /api): list, create (the secret is in
this one answer and nowhere else), remove."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from modelyard.access.keys import Keys
from modelyard.access.network import is_loopback
from modelyard.access.scopes import Scope
from modelyard.api.routing import StrictRoute
from modelyard.catalog.records import ApiKey
from modelyard.config import Settings
from modelyard.errors import LastKey
from modelyard.http_errors import ErrorBody

log = logging.getLogger(__name__)
Priority = Literal["flex", "default", "priority"]  # runtime.queue.Tier
router = APIRouter(
    route_class=StrictRoute,
    prefix="/api/keys",
    tags=["keys"],
    responses={c: {"model": ErrorBody} for c in (400, 401, 403, 404, 409)},
)


class KeyIn(BaseModel):
    name: str
    scope: Scope = Scope.INFERENCE
    models: list[str] = Field(default_factory=list, description="globs of model names; none: every model")
    expires: str | None = Field(None, description="12h, 30d, 2w, a date, or never")
    priority: Priority = Field("default", description="its requests' tier: the higher is served first")


class KeyEdit(BaseModel):
    priority: Priority = Field(description="its requests' tier: the higher is served first")


class KeyOut(BaseModel):
    name: str
    prefix: str = Field(description="the secret's first characters")
    scope: Scope
    models: list[str]
    priority: Priority
    expires_at: datetime | None
    created_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, k: ApiKey) -> KeyOut:
        return cls(
            name=k.name,
            prefix=k.prefix,
            scope=Scope(k.scope),
            models=k.models,
            priority=k.priority,
            expires_at=k.expires_at,
            created_at=k.created_at,
            last_used_at=k.last_used_at,
        )


class NewKeyOut(KeyOut):
    secret: str = Field(description="shown this once: it is not kept")


def keys_of(request: Request) -> Keys:
    keys: Keys = request.app.state.keys
    return keys


@router.get("")
def list_keys(request: Request) -> list[KeyOut]:
    return [KeyOut.of(k) for k in keys_of(request).list()]


@router.post("", status_code=201)
def create_key(request: Request, body: KeyIn) -> NewKeyOut:
    key, secret = keys_of(request).create(body.name, body.scope, body.models, body.expires, body.priority)
    log.warning("%s created the %s key %r", request.state.caller.name, key.scope, key.name)
    return NewKeyOut(**KeyOut.of(key).model_dump(), secret=secret)


@router.patch("/{name}")
def edit_key(request: Request, name: str, body: KeyEdit) -> KeyOut:
    """Change a key's priority (its requests' tier)."""
    key = keys_of(request).prioritize(name, body.priority)
    log.warning("%s set the key %r to priority %s", request.state.caller.name, name, key.priority)
    return KeyOut.of(key)


@router.delete("/{name}", status_code=204)
def remove_key(request: Request, name: str) -> None:
    """Remove a key. The last one is kept while the server listens on the network (unless it
    runs --insecure): keys made or removed elsewhere aside, the network never finds it open."""
    settings: Settings = request.app.state.settings
    keys = keys_of(request)
    if not is_loopback(settings.host) and not settings.insecure and [k.name for k in keys.list()] == [name]:
        raise LastKey(name, settings.host)
    keys.remove(name)
    log.warning("%s removed the key %r", request.state.caller.name, name)
