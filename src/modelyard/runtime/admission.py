"""Admission: what a request asks of the runtime before an engine sees it.

``Admission.admit`` is the one question the gateway asks per request, in every dialect: it
resolves the name (an alias, ``base:adapter``), checks that the caller may use the model and that
the model serves the endpoint, and answers with a Ticket: the model, adapter, backend and context
the request is served with. ``Ticket.lease`` then waits for a slot on a ready instance (loading
the model on demand where that is allowed) and hands back a Lease: where to send the request, and
what to call when it ends (``release``) or the instance could not be reached (``unreachable``).
A request that is tried again takes a new lease on the same ticket.

A route's name (routes.py) is admitted as the ticket of the target it picked, with the targets
that follow it in ``then``: the upstream path (gateway/upstream.py) goes on to them where one
cannot answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from modelyard.access.keys import Caller
from modelyard.backends.base import AnyBackend
from modelyard.catalog.records import Model
from modelyard.errors import ModelyardError, Unsupported
from modelyard.runtime.queue import Ask, Queue, Slot, Tier, Yielding
from modelyard.runtime.routes import Routes
from modelyard.runtime.routing import Prompt

if TYPE_CHECKING:
    from modelyard.runtime.runtime import Runtime

Disconnected = Callable[[], Awaitable[bool]]  # whether the client has gone


async def stays() -> bool:
    """A client that never goes (the gateway's own merged requests)."""
    return False


def check(backend: AnyBackend, model: Model, endpoint: str, capability: str | None = None) -> None:
    """Refuse, before it waits, a request ``model`` cannot answer on ``backend``."""
    if endpoint not in backend.endpoints(model):
        raise Unsupported(f"{model.name!r} is a {model.category} model: it does not serve /v1/{endpoint}")
    if capability is not None and capability not in model.capabilities:
        raise Unsupported(
            f"{model.name!r} is not tagged {capability}",
            hint=f"tag it if it can: `modelyard edit {model.name} --capability {capability}`",
        )
    backend.check(model, endpoint)


@dataclass
class Lease:
    """A slot on one instance, held until ``release`` (called once, whatever happens)."""

    model: str
    queue: Queue
    slot: Slot
    runtime: Runtime = field(repr=False)
    ask: Ask = field(default_factory=Ask)  # who asked it, how, with which prompt
    released: bool = False

    @property
    def url(self) -> str:
        return self.slot.url

    @property
    def headers(self) -> dict[str, str]:
        """What a request to the instance carries (its engine's key)."""
        return self.slot.headers

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.queue.release(self.slot, self.ask)

    def report(self, tokens: int, cached: int | None, prefill: float | None) -> None:
        """What the engine said of the prompt (see Routing.learn): routing learns from it."""
        self.queue.routing.learn(self.ask, tokens, cached, prefill)

    def unreachable(self) -> None:
        """No connection could be made: the instance leaves the rotation (see Runtime)."""
        self.release()
        self.runtime.unreachable(self.model, self.slot)

    def engine_exited(self) -> bool:
        """Whether the instance's engine process has ended (it crashed, or was killed)."""
        engine = self.runtime.engine(self.slot.instance_id)
        return engine is not None and engine.returncode() is not None


@dataclass(frozen=True)
class Ticket:
    """A request admitted for ``model`` (+ ``adapter``), served by ``backend`` with ``context``
    tokens at most."""

    model: Model
    adapter: str | None
    backend: AnyBackend
    context: int | None
    account: str | None  # the key that asks (None: the local user): a load on demand counts for it
    load: bool  # load the model when it is not, whether or not its autoload is on (Ollama's way)
    runtime: Runtime = field(repr=False)
    low: Yielding | None = None  # of low priority (a batch's): served after every interactive request
    tier: Tier = Tier.DEFAULT  # its priority class (see queue.py)
    route: str | None = None  # the route it was asked for by
    then: tuple[Ticket, ...] = ()  # the route's targets to try next, in order

    def stands_in(self, first: Ticket, path: str) -> bool:
        """Whether this ticket (a route's next target) answers ``path`` as ``first`` would: every
        OpenAI-compatible engine answers /v1 (the ticket serves the endpoint), only those that
        speak it /v1/messages, and an engine's own paths (/infill, /tokenize, TGI's /generate)
        only one of the same backend."""
        if path == "/v1/messages":
            return self.backend.anthropic_messages
        if path.startswith("/v1/"):
            return self.backend.dialect == "openai"
        return self.backend.name == first.backend.name

    @property
    def native_messages(self) -> bool:
        """Whether Anthropic's Messages go to the engine as they are: it (and every target after
        it) speaks them."""
        return all(t.backend.anthropic_messages for t in (self, *self.then))

    @property
    def served(self) -> str:
        """The name the engine answers to for it."""
        return self.backend.served_name(self.model, self.adapter)

    @property
    def replicated(self) -> bool:
        """Whether it has more than one instance to choose from (its prompt then picks)."""
        return self.runtime.replicated(self.model.name)

    async def lease(self, disconnected: Disconnected = stays, *, prompt: Prompt | None = None) -> Lease:
        """A slot on a ready instance; waits in the model's bounded queue. ``prompt``: a text
        request's, which routing sends where it is cached (routing.py)."""
        ask = Ask(prompt, self.account, self.tier, self.low)
        queue, slot = await self.runtime.acquire(
            self.model, self.adapter, disconnected, load=self.load, by=self.account, ask=ask
        )
        return Lease(self.model.name, queue, slot, self.runtime, ask)


class Admission:
    """The gateway's port to the runtime for requests."""

    def __init__(self, runtime: Runtime, routes: Routes) -> None:
        self._runtime = runtime
        self.routes = routes

    def admit(
        self, name: str, endpoint: str, caller: Caller, *, capability: str | None = None, load: bool = False
    ) -> Ticket:
        """The ticket of a request for ``name`` on ``endpoint`` (chat, embeddings, ...) by
        ``caller`` (at its tier); ``capability``: a tag the model must have (image-to-image,
        video). A route's: its first target's, with the others to try next."""
        targets = self.routes.choose(name)
        if targets is None:
            return self._ticket(name, endpoint, caller, capability, load)
        caller.check_model(name)  # the route's name: its targets are reached through it
        tickets: list[Ticket] = []
        refused: ModelyardError | None = None
        for target in targets:
            try:
                tickets.append(self._ticket(target, endpoint, caller, capability, load, route=name))
            except ModelyardError as e:  # gone from the library, or not for this endpoint
                refused = refused or e
        if not tickets:
            assert refused is not None
            refused.message = f"route {name!r}: {refused.message}"
            raise refused
        return replace(tickets[0], then=tuple(tickets[1:]))

    def _ticket(
        self,
        name: str,
        endpoint: str,
        caller: Caller,
        capability: str | None,
        load: bool,
        *,
        route: str | None = None,
    ) -> Ticket:
        rt = self._runtime
        model, adapter = rt.library.resolve(name)
        if route is None:
            caller.check_model(model.name)
        backend = rt.backend_for(model)
        try:
            check(backend, model, endpoint, capability)
        except ModelyardError as e:
            e.model = model.name
            raise
        context = rt.context_of(model, backend)
        return Ticket(
            model, adapter, backend, context, caller.account, load, rt, caller.low, caller.tier, route
        )
