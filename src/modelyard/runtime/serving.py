"""What the runtime serves now, as the API, the Ollama API and the metrics read it: a snapshot
per model, so that nothing outside the runtime reads its deployments and queues themselves."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelyard.catalog.records import Autoscale


@dataclass(frozen=True)
class Serving:
    """A model the runtime serves (or holds requests for): its instances by state, its queue,
    how long it has been idle and how long it stays loaded so (None: until it is unloaded)."""

    model: str
    adapter: str | None = None
    backend: str | None = None  # None: not loaded (its queue holds requests for a load)
    instances: dict[str, int] = field(default_factory=dict)  # state -> instances
    waiting: int = 0
    in_flight: int = 0
    prefix_hits: int = 0  # text requests sent to the replica holding most of their prompt
    prefix_misses: dict[str, int] = field(default_factory=dict)  # the others, by reason (routing.py)
    prefix_saved: int = 0  # prompt tokens the hits spared, as estimated
    idle: float = 0.0  # seconds since its last request ended
    kept_for: float | None = None
    context: int | None = None  # the context its instances run with; None: the model's own
    replicas: int = 0  # those its deployment asks for
    autoscale: Autoscale | None = None  # its deployment's, if it scales itself
    places: int = 0  # requests its ready instances take at once
    waited: float = 0.0  # seconds its oldest waiting request has waited

    @property
    def loaded(self) -> bool:
        return self.backend is not None
