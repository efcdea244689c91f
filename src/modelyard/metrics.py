"""Prometheus metrics: what the gateway counts as requests pass (requests, latency, time to first
token, tokens, queue waits, retries), and what is read from the runtime, the downloads and the
monitor when Prometheus scrapes (queues, instances, restarts, download bytes and jobs, CPU, RAM,
GPU memory).

Each server has its own registry. The hot path touches only label children cached per model
and endpoint: a few additions per request, none per streamed chunk.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelyard.runtime.routing import REASONS

if TYPE_CHECKING:
    from modelyard.hub.jobs import Downloads
    from modelyard.monitor.sampler import Monitor
    from modelyard.runtime.routes import Routes
    from modelyard.runtime.runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass(slots=True)
class Series:
    """The label children one model and endpoint write to."""

    latency: Histogram
    ttft: Histogram
    wait: Histogram
    tokens_in: Counter
    tokens_out: Counter
    images: Counter
    retries: Counter
    cached: Counter
    drafted: Counter
    accepted: Counter
    decoded: Counter
    decode_seconds: Counter
    statuses: dict[int, Counter]
    # the model's [drafted, accepted, decoded tokens, decode seconds] over its endpoints (one
    # list, shared by its series), for `ps` and the API
    tally: list[float]

    def count_drafts(self, drafted: int, accepted: int) -> None:
        self.drafted.inc(drafted)
        self.accepted.inc(accepted)
        self.tally[0] += drafted
        self.tally[1] += accepted

    def count_decode(self, tokens: int, seconds: float) -> None:
        self.decoded.inc(tokens)
        self.decode_seconds.inc(seconds)
        self.tally[2] += tokens
        self.tally[3] += seconds


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = Counter(
            "modelyard_requests", "Requests through the gateway, by how they ended",
            ["model", "endpoint", "status"], registry=r,
        )  # fmt: skip
        self._latency = Histogram(
            "modelyard_request_seconds", "From a request's arrival to its answer's end (queue included)",
            ["model", "endpoint"], buckets=SECONDS, registry=r,
        )  # fmt: skip
        self._ttft = Histogram(
            "modelyard_time_to_first_token_seconds", "From a streamed request's arrival to its first chunk",
            ["model", "endpoint"], buckets=SECONDS, registry=r,
        )  # fmt: skip
        self._wait = Histogram(
            "modelyard_queue_wait_seconds", "How long requests waited for a free slot",
            ["model", "endpoint"], buckets=SECONDS, registry=r,
        )  # fmt: skip
        self._tokens = Counter(
            "modelyard_tokens", "Tokens in prompts (in) and answers (out), as the engines count them",
            ["model", "endpoint", "direction"], registry=r,
        )  # fmt: skip
        self._images = Counter("modelyard_images", "Images generated", ["model", "endpoint"], registry=r)
        self._retries = Counter(
            "modelyard_retries", "Requests sent again after an instance did not take them",
            ["model", "endpoint"], registry=r,
        )  # fmt: skip
        self._cached = Counter(
            "modelyard_cached_prompt_tokens", "Prompt tokens the engines' prompt caches held (not computed again)",
            ["model", "endpoint"], registry=r,
        )  # fmt: skip
        self._drafts = Counter(
            "modelyard_draft_tokens", "Speculative decoding: tokens drafted, and of those accepted",
            ["model", "endpoint", "outcome"], registry=r,
        )  # fmt: skip
        self._decoded = Counter(
            "modelyard_decoded_tokens", "Tokens the engines decoded after each answer's first, as they report it",
            ["model", "endpoint"], registry=r,
        )  # fmt: skip
        self._decode_seconds = Counter(
            "modelyard_decode_seconds", "Seconds the engines spent on those tokens (tokens/s: the ratio)",
            ["model", "endpoint"], registry=r,
        )  # fmt: skip
        self._series: dict[tuple[str, str], Series] = {}
        self._tallies: dict[str, list[float]] = {}

    def series(self, model: str, endpoint: str) -> Series:
        """The children for ``model`` and ``endpoint``, made on first use."""
        found = self._series.get((model, endpoint))
        if found is None:
            found = self._series[(model, endpoint)] = Series(
                self._latency.labels(model, endpoint),
                self._ttft.labels(model, endpoint),
                self._wait.labels(model, endpoint),
                self._tokens.labels(model, endpoint, "in"),
                self._tokens.labels(model, endpoint, "out"),
                self._images.labels(model, endpoint),
                self._retries.labels(model, endpoint),
                self._cached.labels(model, endpoint),
                self._drafts.labels(model, endpoint, "drafted"),
                self._drafts.labels(model, endpoint, "accepted"),
                self._decoded.labels(model, endpoint),
                self._decode_seconds.labels(model, endpoint),
                {},
                self._tallies.setdefault(model, [0.0, 0.0, 0.0, 0.0]),
            )
        return found

    def engine_report(self, model: str) -> tuple[float | None, float | None]:
        """(the share of drafted tokens accepted, tokens a second decoded) for ``model`` so far,
        as its engines report them; None where they reported nothing."""
        drafted, accepted, tokens, seconds = self._tallies.get(model, (0.0, 0.0, 0.0, 0.0))
        return (accepted / drafted if drafted else None), (tokens / seconds if seconds else None)

    def status(self, series: Series, model: str, endpoint: str, status: int) -> Counter:
        child = series.statuses.get(status)
        if child is None:
            child = series.statuses[status] = self._requests.labels(model, endpoint, str(status))
        return child

    def watch(self, runtime: Runtime, monitor: Monitor, downloads: Downloads, routes: Routes) -> None:
        """Read these at every scrape."""
        self.registry.register(_State(runtime, monitor, downloads, routes))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _State(Collector):
    """What is read, not counted: queues, instances, restarts, downloads, the machine."""

    def __init__(self, runtime: Runtime, monitor: Monitor, downloads: Downloads, routes: Routes) -> None:
        self.runtime = runtime
        self.monitor = monitor
        self.downloads = downloads
        self.routes = routes

    def describe(self) -> list[Metric]:
        return []  # read at each scrape; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        rt = self.runtime
        waiting = GaugeMetricFamily(
            "modelyard_queue_waiting", "Requests waiting for a slot", labels=["model"]
        )
        flight = GaugeMetricFamily(
            "modelyard_requests_in_flight", "Requests an engine works on", labels=["model"]
        )
        hits = CounterMetricFamily(
            "modelyard_prefix_hits",
            "Text requests sent to a replica holding the most of their prompt that any held",
            labels=["model"],
        )
        misses = CounterMetricFamily(
            "modelyard_prefix_misses",
            "Text requests that missed: no replica held their prompt (cold), the one that did was "
            "busy (busy), held less than thought (evicted), or their session's left (gone)",
            labels=["model", "reason"],
        )
        saved = CounterMetricFamily(
            "modelyard_prefix_saved_tokens",
            "Prompt tokens the hits did not prefill again, as estimated when routed",
            labels=["model"],
        )
        serving = rt.serving()
        for s in serving:
            waiting.add_metric([s.model], s.waiting)
            flight.add_metric([s.model], s.in_flight)
            hits.add_metric([s.model], s.prefix_hits)
            for reason in REASONS:
                misses.add_metric([s.model, reason], s.prefix_misses.get(reason, 0))
            saved.add_metric([s.model], s.prefix_saved)
        yield waiting
        yield flight
        yield hits
        yield misses
        yield saved
        instances = GaugeMetricFamily(
            "modelyard_instances", "Engine instances by state", labels=["model", "state"]
        )
        for s in serving:
            for state, n in sorted(s.instances.items()):
                instances.add_metric([s.model, state], n)
        yield instances
        restarts = CounterMetricFamily(
            "modelyard_restarts", "Engine restarts after an exit", labels=["model"]
        )
        for name, n in sorted(rt.restarts.items()):
            restarts.add_metric([name], n)
        yield restarts
        targets = CounterMetricFamily(
            "modelyard_route_requests",
            "Requests of a route by target and outcome: served, or passed over for the next target "
            "(overloaded, unavailable, failed)",
            labels=["route", "target", "outcome"],
        )
        for c, n in sorted(self.routes.counts.items(), key=lambda item: astuple(item[0])):
            targets.add_metric([c.route, c.target, c.outcome], n)
        yield targets
        yield CounterMetricFamily(
            "modelyard_model_swaps", "Models unloaded for another (the load rules)", value=rt.turns.swaps
        )
        yield CounterMetricFamily(
            "modelyard_download_bytes", "Bytes downloaded from the hubs", value=self.downloads.received
        )
        jobs = GaugeMetricFamily("modelyard_downloads", "Download jobs by state", labels=["state"])
        for state, n in sorted(Tally(j.state for j in self.downloads.all()).items()):
            jobs.add_metric([state], n)
        yield jobs
        sample = self.monitor.current
        yield GaugeMetricFamily("modelyard_cpu_percent", "CPU use of the machine", value=sample.cpu_percent)
        yield GaugeMetricFamily("modelyard_memory_used_bytes", "RAM in use", value=sample.memory_used)
        yield GaugeMetricFamily("modelyard_memory_total_bytes", "RAM in all", value=sample.memory_total)
        used = GaugeMetricFamily(
            "modelyard_gpu_memory_used_bytes", "GPU memory in use", labels=["gpu", "name"]
        )
        total = GaugeMetricFamily(
            "modelyard_gpu_memory_total_bytes", "GPU memory in all", labels=["gpu", "name"]
        )
        for gpu in sample.gpus:
            if gpu.memory_used is not None:
                used.add_metric([str(gpu.index), gpu.name], gpu.memory_used)
            if gpu.memory_total is not None:
                total.add_metric([str(gpu.index), gpu.name], gpu.memory_total)
        yield used
        yield total
