"""API keys: made once (the secret is shown then and never again), kept as a sha256 digest,
checked on every request.

Two scopes: ``inference`` reaches the OpenAI-compatible gateway (/v1), optionally only for some
models (globs of names); ``admin`` reaches everything, the management API and the web UI too.
A server with no key at all is open (on loopback only: see network.py); once one key exists,
every request needs one.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase

from modelyard.access.scopes import Scope
from modelyard.catalog.records import ApiKey
from modelyard.catalog.store import Store
from modelyard.errors import InvalidInput, InvalidName, ScopeDenied, Unauthenticated
from modelyard.library.naming import check_name
from modelyard.periods import duration, moment
from modelyard.runtime.queue import Tier, Yielding
from modelyard.usage.meter import LOCAL

PREFIX = "my-"  # every secret starts so: easy to spot in a leaked file
SHOWN = 10  # characters of a secret kept to tell keys apart
ADOPTED_LENGTH = 24  # characters an admin key's secret given to the server has at least
ADOPTED_KEY = "env-admin"  # the name of the key MODELYARD_ADMIN_KEY gives
REMEMBER = 5.0  # seconds a checked key (or a refused secret) is trusted without the catalog
USE_EVERY = 60.0  # seconds between two records of a key's last use


def tier_of(name: str) -> Tier:
    """The tier called ``name``; InvalidInput for another."""
    try:
        return Tier.named(name)
    except KeyError:
        raise InvalidInput(
            f"unknown priority {name!r}", hint=f"one of {', '.join(str(t) for t in Tier)}"
        ) from None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def expiry(text: str | None, now: datetime) -> datetime | None:
    """When a key given ``--expires TEXT`` expires: ``30d``, ``12h``, ``2w``, a date
    (``2027-01-31``) or a time in ISO 8601; None or ``never``: it does not."""
    if text is None or text == "never":
        return None
    span = duration(text)
    if span is not None:
        return now + span
    at = moment(text, "time")
    if at <= now:
        raise InvalidInput(f"{text} is already past", hint="give a time to come")
    return at


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a key, or nobody on an open server (which may do everything).
    ``low``: a batch's request, made for the key, served after every interactive one; ``asked``:
    the tier the request asked for (X-Priority), which lowers the key's."""

    key: ApiKey | None = None
    low: Yielding | None = None
    asked: Tier = Tier.PRIORITY

    @property
    def tier(self) -> Tier:
        """The tier its requests are served at: its key's (default for the local user), or the
        lower one it asked for."""
        own = tier_of(self.key.priority) if self.key is not None else Tier.DEFAULT
        return min(own, self.asked)

    @property
    def name(self) -> str:
        return self.key.name if self.key else "the local user"

    @property
    def account(self) -> str | None:
        """The key's name, under which usage and quotas count; None: the local user."""
        return self.key.name if self.key else None

    @property
    def admin(self) -> bool:
        return self.key is None or self.key.scope == Scope.ADMIN

    def may_use(self, model: str) -> bool:
        """Whether this caller may send requests to ``model`` (a model's own name)."""
        if self.key is None or not self.key.models:
            return True
        return any(fnmatchcase(model, glob) for glob in self.key.models)

    def check_model(self, model: str) -> None:
        if not self.may_use(model):
            assert self.key is not None
            raise ScopeDenied(
                f"the key {self.key.name!r} may not use {model!r}",
                hint=f"it reaches the models {', '.join(self.key.models)}",
            )


OPEN = Caller()


class Keys:
    """The keys of one catalog, with what was checked remembered for a few seconds: a key made or
    removed by `modelyard keys` (another process) counts within REMEMBER seconds."""

    def __init__(self, store: Store, *, now: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._now = now
        self._checked: dict[str, tuple[float, ApiKey | None]] = {}
        self._any: tuple[float, bool] | None = None
        self._used: dict[str, float] = {}
        self._named: dict[str, tuple[float, ApiKey | None]] = {}  # batches' keys, by name

    def create(
        self,
        name: str,
        scope: str = Scope.INFERENCE,
        models: list[str] | None = None,
        expires: str | None = None,
        priority: str = "default",
    ) -> tuple[ApiKey, str]:
        """A new key and its secret, which is not kept: the caller shows it once. ``priority``:
        the tier of its requests (flex, default, priority)."""
        check_name(name, "key")
        if name == LOCAL:
            raise InvalidName(f"{LOCAL!r} names the local user in usage and quotas", hint="pick another name")
        if scope not in tuple(Scope):
            raise InvalidInput(f"unknown scope {scope!r}", hint="admin or inference")
        globs = [g for g in models or [] if g]
        tier_of(priority)
        secret = new_secret()
        key = ApiKey(
            name=name,
            prefix=secret[:SHOWN],
            digest=digest(secret),
            scope=scope,
            models=globs,
            expires_at=expiry(expires, datetime.now(UTC)),
            priority=priority,
        )
        key = self.store.add_key(key)
        self._any = None
        return key, secret

    def adopt(self, name: str, secret: str) -> ApiKey:
        """An admin key ``name`` whose secret is ``secret`` (given by a secret store, such as a
        Kubernetes Secret): kept as it is when it already has that secret, else made anew."""
        if len(secret) < ADOPTED_LENGTH or secret != secret.strip():
            raise InvalidInput(
                f"an admin key's secret needs {ADOPTED_LENGTH} characters at least, without spaces around",
                hint="make one with `openssl rand -hex 24`",
            )
        check_name(name, "key")
        found = next((k for k in self.list() if k.name == name), None)
        if found is not None and found.digest == digest(secret) and found.scope == Scope.ADMIN:
            return found
        if found is not None:
            self.store.delete_key(name)
        key = ApiKey(name=name, prefix=secret[:SHOWN], digest=digest(secret), scope=Scope.ADMIN, models=[])
        key = self.store.add_key(key)
        self._checked.clear()
        self._named.clear()
        self._any = None
        return key

    def list(self) -> list[ApiKey]:
        return self.store.keys()

    def prioritize(self, name: str, priority: str) -> ApiKey:
        """Set the tier of ``name``'s requests (a running server sees it within seconds)."""
        tier_of(priority)
        key = self.store.set_key_priority(name, priority)
        self._checked.clear()
        self._named.clear()
        return key

    def remove(self, name: str) -> None:
        self.store.delete_key(name)
        self._checked.clear()
        self._named.clear()
        self._any = None

    def required(self) -> bool:
        """Whether requests need a key: once any key exists."""
        now = self._now()
        if self._any is None or now - self._any[0] > REMEMBER:
            self._any = (now, self.store.count_keys() > 0)
        return self._any[1]

    def authenticate(self, secret: str | None) -> Caller:
        """The caller a secret names; Unauthenticated when it names no live key."""
        if not secret:
            raise Unauthenticated()
        hashed = digest(secret)
        now = self._now()
        seen = self._checked.get(hashed)
        if seen is None or now - seen[0] > REMEMBER:
            if len(self._checked) > 10_000:  # bounded, whatever a client sends
                self._checked.clear()
            seen = self._checked[hashed] = (now, self.store.key_by_digest(hashed))
        key = seen[1]
        if key is None:
            raise Unauthenticated("this API key is not known here (removed, or mistyped)")
        _check_expiry(key)
        if now - self._used.get(hashed, -USE_EVERY) >= USE_EVERY:
            self._used[hashed] = now
            self.store.key_used(hashed, datetime.now(UTC))
        return Caller(key)

    def acting_for(self, account: str | None, low: Yielding) -> Caller:
        """The caller that a batch made by ``account`` (None: the local user) acts as, at low
        priority; Unauthenticated once that key is removed or expired."""
        if account is None:
            return Caller(low=low)
        now = self._now()
        seen = self._named.get(account)
        if seen is None or now - seen[0] > REMEMBER:  # a batch asks for each of its requests
            seen = self._named[account] = (now, next((k for k in self.list() if k.name == account), None))
        key = seen[1]
        if key is None:
            raise Unauthenticated(f"the API key {account!r} that made this batch was removed")
        _check_expiry(key)
        return Caller(key, low=low)


def _check_expiry(key: ApiKey) -> None:
    if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
        raise Unauthenticated(f"the API key {key.name!r} expired on {key.expires_at:%Y-%m-%d %H:%M} UTC")
