"""Autoscaling: a deployment with an ``Autoscale`` keeps between its least and most replicas.
One more starts while a request has waited ``wait`` seconds for a slot (at once when it has
none: a deployment scaled to zero holds its first request until an instance serves it); one
fewer stops (the newest, drained) once the others could have taken all its requests for
``idle`` seconds. A replica that does not fit (the placement refuses it) is asked for again
after HOLD seconds; on a cluster it may wait, pending, for a worker. The watching (watching.py)
asks ``Scaling.wanted`` each time it looks and makes the change."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelyard.runtime.serving import Serving

HOLD = 30.0  # seconds before a refused replica is asked for again


@dataclass
class Scaling:
    calm: dict[str, float] = field(default_factory=dict)  # model -> since when fewer could serve it
    held: dict[str, float] = field(default_factory=dict)  # model -> no replica more before then

    def wanted(self, s: Serving, now: float) -> int | None:
        """The replicas ``s`` should have now, when not those it has (None: as it is)."""
        a = s.autoscale
        if a is None or not s.loaded:
            return None
        n = s.replicas
        if n < a.least:
            return a.least
        if n > a.most:
            return a.most
        if n < a.most and s.waiting and (n == 0 or s.waited >= a.wait) and now >= self.held.get(s.model, 0.0):
            return n + 1
        per = s.places // n if n else 0  # requests one replica takes at once
        if s.in_flight + s.waiting > (n - 1) * per or s.model not in self.calm:
            self.calm[s.model] = now
        elif n > a.least and now - self.calm[s.model] >= a.idle:
            self.calm[s.model] = now
            return n - 1
        return None

    def refused(self, model: str, now: float) -> None:
        """A replica more did not fit: ask again after HOLD seconds."""
        self.held[model] = now + HOLD
