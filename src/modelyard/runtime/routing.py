"""Cache-aware routing: which replica a text request goes to, and whether it waits for one.

What each replica's prompt cache holds is guessed from the requests sent there, with no help from
the engines: a prompt is a chain of block hashes (each block's hash covers every block before
it, so equal hashes mean equal beginnings), and a replica holds the prompts it served lately,
each counted whole, the least recently used forgotten first, up to what its engine keeps
(``Slot.cache_tokens``). A request costs, on each replica, the prefill of what that replica
does not hold plus its wait there for a slot of the engine; it goes to the cheapest free
replica, or waits for a busy one while the prefill it saves there is worth more than its wait
(and never longer than that), a miss counted ``STICK`` times its prefill: the prompt it brings
puts out another one there. A session id (the X-Session-Id header, or
``prompt_cache_key``) pins a conversation to the replica that served it last.

The rates are learned as the engines answer: seconds of prefill per character (from
llama-server's and the runner's timings, else the time to a stream's first chunk), characters
per token, and how long a request runs on after its prefill. The engine's own count of cached
tokens corrects the guess: a replica that held less than thought forgets the rest (a miss, for
the reason "evicted"). Routing "least-loaded" sends each request to the free replica with the
fewest in flight, and on a tie to the one holding most of its prompt (the routing before this).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from modelyard.runtime.queue import Ask, Slot

BLOCK = 256  # characters a block of a prompt holds (about 64 tokens)
MOST = 1024  # blocks of a prompt that count (its first 256 KiB)
UNKNOWN_CACHE = 1 << 18  # tokens an engine that does not say how many it keeps is thought to keep
SESSIONS = 4096  # sessions remembered per model, the least recently used forgotten first
WEIGHT = 0.2  # of each new observation in a learned rate
MEASURED = 16  # tokens of prefill at least, for its time to say anything of the rate
UNSEEN = 1000  # characters thought to be in the prompt of a request routing did not see
Policy = Literal["prefix", "least-loaded"]
# A prompt prefilled on a replica that did not hold it costs more than its prefill: it takes the
# place of another prompt there, whose next request misses. A miss counts this many times its
# prefill when a request weighs it against waiting for the replica that holds its prompt.
STICK = 3.0
REASONS = ("cold", "busy", "evicted", "gone")  # why a request missed the cache (see Routing.took)


def _blend(old: float, new: float) -> float:
    return old + WEIGHT * (new - old)


@dataclass(frozen=True, slots=True)
class Prompt:
    """What routing knows of a request's prompt: the chained hashes of its whole blocks, its
    length in characters (or bytes, as it came), and the session it belongs to."""

    blocks: tuple[int, ...]
    chars: int
    session: str | None = None

    @classmethod
    def of(cls, text: str | bytes, session: str | None = None) -> Prompt:
        blocks: list[int] = []
        chained = 0
        for at in range(0, min(len(text), BLOCK * MOST) - BLOCK + 1, BLOCK):
            chained = hash((chained, text[at : at + BLOCK]))
            blocks.append(chained)
        return cls(tuple(blocks), len(text), session)


class Cache:
    """The prompts one replica's engine is thought to hold, the least recently used forgotten
    first. Each counts whole against what the engine keeps, its beginning shared with others
    too: an engine keeps each prompt's state whole (llama-server's slots and prompt cache). A
    conversation's next turn takes the place of the turn before it (the same state, grown)."""

    def __init__(self) -> None:
        self.prompts: OrderedDict[int, tuple[int, ...]] = OrderedDict()  # its last block -> its blocks
        self.blocks: Counter[int] = Counter()  # block -> the prompts held that have it
        self.size = 0  # blocks of the prompts held, each counted whole

    def held(self, prompt: Prompt) -> int:
        """How many of the prompt's first blocks it holds."""
        n = 0
        for block in prompt.blocks:
            if block not in self.blocks:
                break
            n += 1
        return n

    def add(self, prompt: Prompt, most: int) -> None:
        """The prompt is held now (in place of those it begins with); beyond ``most`` blocks,
        the least recently used prompts go."""
        if not prompt.blocks:
            return
        for block in prompt.blocks:  # the turns before it, held as prompts of their own
            if block in self.prompts:
                self._drop(block)
        self.prompts[prompt.blocks[-1]] = prompt.blocks
        self.blocks.update(prompt.blocks)
        self.size += len(prompt.blocks)
        while self.size > most and len(self.prompts) > 1:
            self._drop(next(iter(self.prompts)))

    def forget(self, prompt: Prompt, keep: int) -> None:
        """The prompt's blocks after its first ``keep`` are not held after all: nor any prompt
        that has them."""
        if keep >= len(prompt.blocks):
            return
        lost = prompt.blocks[keep]
        for last, blocks in list(self.prompts.items()):
            if len(blocks) > keep and blocks[keep] == lost:
                self._drop(last)

    def _drop(self, last: int) -> None:
        blocks = self.prompts.pop(last)
        self.blocks.subtract(blocks)
        for block in blocks:
            if self.blocks[block] <= 0:
                del self.blocks[block]
        self.size -= len(blocks)


@dataclass(frozen=True, slots=True)
class Choice:
    """Where a request goes now (``slot``), or None: it waits, for a busy replica that holds
    more of its prompt (``home``, until ``until``: as long as that is worth it) or for any slot."""

    slot: Slot | None
    until: float | None = None
    home: int | None = None


@dataclass
class Routing:
    """The routing of one model's requests over its replicas (see the module's text)."""

    policy: Policy = "prefix"
    caches: dict[int, Cache] = field(default_factory=dict)
    sessions: OrderedDict[str, int] = field(default_factory=OrderedDict)  # session -> its replica
    # a prompt's first block -> the replica the last prompt opening with it went to, and its blocks
    roots: OrderedDict[int, tuple[int, tuple[int, ...]]] = field(default_factory=OrderedDict)
    per_char: float = 1e-4  # seconds of prefill per character of prompt (learned)
    chars_per_token: float = 4.0  # (learned)
    after: float = 0.0  # seconds a request runs after its prefill (learned)
    hits: int = 0  # requests sent to a replica holding the most of their prompt there was
    misses: Counter[str] = field(default_factory=Counter)  # the others, by reason
    saved: float = 0.0  # prompt tokens the hits did not prefill again, as estimated

    def cache(self, instance: int) -> Cache:
        cache = self.caches.get(instance)
        if cache is None:
            cache = self.caches[instance] = Cache()
        return cache

    def gone(self, instance: int) -> None:
        """A replica left: what it held is gone with it."""
        self.caches.pop(instance, None)
        for root in [r for r, (i, _) in self.roots.items() if i == instance]:
            del self.roots[root]

    def held(self, slot: Slot, prompt: Prompt) -> int:
        """Characters of ``prompt`` that ``slot``'s replica is thought to hold."""
        if prompt.session is not None and self.sessions.get(prompt.session) == slot.instance_id:
            return prompt.chars  # its session's replica: the conversation so far
        cache = self.caches.get(slot.instance_id)
        return min(prompt.chars, cache.held(prompt) * BLOCK) if cache is not None else 0

    def at_home(self, slot: Slot, prompt: Prompt) -> int:
        """Where no replica is thought to hold any of ``prompt``: the characters it shares with
        the last prompt of the same opening if ``slot``'s replica is where that one went (its
        home), else 0. Routing counts them as held there: prompts of one opening stay on one
        replica, and the other replicas' caches keep theirs."""
        home = self.roots.get(prompt.blocks[0]) if prompt.blocks else None
        if home is None or home[0] != slot.instance_id:
            return 0
        if any(cache.held(prompt) for cache in self.caches.values()):
            return 0
        shared = 0
        for mine, theirs in zip(prompt.blocks, home[1], strict=False):
            if mine != theirs:
                break
            shared += 1
        return min(prompt.chars, shared * BLOCK)

    def wait(self, slot: Slot, now: float, ahead: int = 0) -> float:
        """Seconds until ``slot``'s engine starts a request sent now, behind ``ahead`` others
        that wait for it: none while a slot of the engine is free, else until enough of those
        it runs are done (as each was expected to take)."""
        slots = slot.slots or slot.capacity
        needed = slot.in_flight + ahead - slots + 1
        if needed <= 0:
            return 0.0
        ends = sorted(max(0.0, a.end - now) for a in slot.asks)
        typical = self.after + self.per_char * UNSEEN
        ends += [typical] * max(0, slot.in_flight - len(ends))
        if needed <= len(ends):
            return ends[needed - 1]
        return (ends[-1] if ends else 0.0) + (needed - len(ends)) * typical / slots

    def choose(
        self, free: list[Slot], busy: list[Slot], prompt: Prompt | None, now: float, waited: float,
        ahead: Counter[int],
    ) -> Choice:  # fmt: skip
        """Where a request goes: of the ``free`` replicas (those with room), the one where it costs
        least, unless one of the ``busy`` ones holds enough more of its prompt to wait for (it
        has let free slots go for ``waited`` seconds already, for that replica: its wait in a
        full queue does not count; ``ahead``: requests waiting for each replica)."""
        if not free and not busy:
            return Choice(None)
        if prompt is None:
            return Choice(min(free, key=lambda s: s.in_flight, default=None))
        if self.policy == "least-loaded":
            return Choice(min(free, key=lambda s: (s.in_flight, -self.held(s, prompt)), default=None))

        def have(s: Slot) -> int:
            return self.held(s, prompt) or self.at_home(s, prompt)

        def cost(s: Slot) -> float:  # a miss costs its prefill, and STICK times that elsewhere
            return STICK * self.per_char * (prompt.chars - have(s)) + self.wait(s, now, ahead[s.instance_id])

        def rank(s: Slot) -> tuple[float, int, int]:  # a tie: the less busy, then the emptier cache
            cache = self.caches.get(s.instance_id)
            return cost(s), s.in_flight, cache.size if cache is not None else 0

        best = min(free, key=rank, default=None)
        held_best = have(best) if best is not None else 0
        holders = [s for s in busy if have(s) > held_best]
        if not holders:
            return Choice(best)
        home = min(holders, key=rank)
        if best is None:
            return Choice(None)
        saves = STICK * self.per_char * (have(home) - held_best)  # seconds, as costed
        if cost(home) < cost(best) and waited < saves:
            return Choice(None, until=now - waited + saves, home=home.instance_id)
        return Choice(best)

    def took(self, slot: Slot, ask: Ask, serving: Iterable[Slot], now: float) -> None:
        """``ask``'s request got a slot on ``slot``'s replica: when it should be done there; for
        a prompt, a hit or a miss, and the prompt is held there from now on."""
        prompt = ask.prompt
        ask.instance = slot.instance_id
        ask.held = self.held(slot, prompt) if prompt is not None else 0
        ask.prefill = self.per_char * ((prompt.chars if prompt is not None else UNSEEN) - ask.held)
        ask.start = now + self.wait(slot, now)  # when its prefill should begin
        ask.end = ask.start + ask.prefill + self.after
        slot.asks.add(ask)
        if prompt is None:
            return
        most = max([ask.held, *(self.held(s, prompt) for s in serving)])
        pinned = self.sessions.get(prompt.session) if prompt.session is not None else None
        ask.hit = bool(ask.held) and ask.held >= most
        if ask.hit:
            self.hits += 1
            self.saved += ask.held / self.chars_per_token
        elif (
            pinned is not None
            and pinned != slot.instance_id
            and all(s.instance_id != pinned for s in serving)
        ):
            self.misses["gone"] += 1
        elif prompt.blocks or prompt.session is not None:  # (a prompt shorter than a block: neither)
            self.misses["busy" if most else "cold"] += 1
        tokens = slot.cache_tokens or UNKNOWN_CACHE
        self.cache(slot.instance_id).add(prompt, max(1, int(tokens * self.chars_per_token) // BLOCK))
        if prompt.blocks:
            self.roots[prompt.blocks[0]] = (slot.instance_id, prompt.blocks)
            self.roots.move_to_end(prompt.blocks[0])
            if len(self.roots) > SESSIONS:
                self.roots.popitem(last=False)
        if prompt.session is not None:
            self.sessions[prompt.session] = slot.instance_id
            self.sessions.move_to_end(prompt.session)
            if len(self.sessions) > SESSIONS:
                self.sessions.popitem(last=False)

    def done(self, slot: Slot, ask: Ask, now: float) -> None:
        """``ask``'s request ended: how long a request runs after its prefill is learned."""
        if ask in slot.asks:
            slot.asks.discard(ask)
            if ask.prompt is not None:
                self.after = _blend(self.after, max(0.0, now - ask.start - ask.prefill))

    def learn(self, ask: Ask, tokens: int, cached: int | None, prefill: float | None) -> None:
        """The engine answered ``ask``'s request: its prompt was ``tokens`` long (0: not known),
        ``cached`` of them from its cache (None: it does not say), prefilled in ``prefill``
        seconds (None: not known)."""
        prompt = ask.prompt
        if prompt is None or ask.instance is None:
            return
        if tokens > 0:
            self.chars_per_token = _blend(self.chars_per_token, prompt.chars / tokens)
        if cached is not None and tokens > 0:
            computed = (tokens - cached) * self.chars_per_token
        else:  # as routing thought
            computed = prompt.chars - ask.held
        if prefill is not None and prefill > 0 and computed >= MEASURED * self.chars_per_token:
            self.per_char = _blend(self.per_char, prefill / computed)
        if cached is None or not ask.held:
            return
        thought = ask.held / self.chars_per_token
        if cached < thought / 2 and thought - cached >= BLOCK / self.chars_per_token:
            keep = int(cached * self.chars_per_token) // BLOCK
            self.cache(ask.instance).forget(prompt, keep)
            if prompt.session is not None and self.sessions.get(prompt.session) == ask.instance:
                del self.sessions[prompt.session]
            if ask.hit:
                self.hits -= 1
                self.saved -= thought
                self.misses["evicted"] += 1
            ask.held, ask.hit = 0, False
