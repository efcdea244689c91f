"""OpenTelemetry traces of the gateway's requests, off unless MODELYARD_OTEL_ENDPOINT names an
OTLP/HTTP receiver: one trace per request (a client's ``traceparent`` continues its own), with
the wait for a slot, the upstream call until its first byte and after it as child spans, and the
``traceparent`` sent on to the engine so that an engine that traces adds its spans under it: the
runner (runners/app.py: a span per request, as service modelyard-runner) and vLLM (its own, with
--otlp-traces-endpoint), told where to send them by their backends. Spans carry metadata only (model, endpoint, key name, instance, status, tokens),
never a prompt or an answer.

A request's timings are taken as it runs (gateway/exchange.py); the child spans are made when it
ends, with those times, so a request pays nothing for tracing but its span's start and end.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the runner imports this module in environments without the server's packages
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from modelyard.config import Settings

SERVICE, RUNNER_SERVICE = "modelyard", "modelyard-runner"
ENDPOINT_VAR = "MODELYARD_OTEL_ENDPOINT"  # the runner's, set by its backend: where its spans go


class Tracing:
    """A process's tracer; ``enabled`` is False (and every call a no-op) without an endpoint or
    an exporter (the tests' in-memory one). ``sample``: the share of requests traced that come
    with no trace of their own (a traced parent's choice is always followed)."""

    def __init__(
        self,
        endpoint: str | None,
        sample: float = 1.0,
        *,
        exporter: SpanExporter | None = None,
        service: str = SERVICE,
    ) -> None:
        self.enabled = exporter is not None or bool(endpoint)
        self.sample = sample
        self._tracer: Tracer | None = None
        self._provider: Any = None
        if not self.enabled:
            return
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

        sampler = ParentBased(ALWAYS_ON)  # a new trace is begun only where ``wants`` said so
        provider = TracerProvider(resource=Resource.create({"service.name": service}), sampler=sampler)
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(str(endpoint))))
            )
        else:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        self._provider = provider
        self._tracer = provider.get_tracer(service)

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing:
        return cls(settings.otel_endpoint, settings.otel_sample)

    def wants(self, headers: Mapping[str, str]) -> bool:
        """Whether a request is traced: always under a caller's trace, else by the sample (the
        others cost nothing more than this)."""
        return self._tracer is not None and ("traceparent" in headers or random.random() < self.sample)

    def begin(self, name: str, headers: Mapping[str, str], attributes: dict[str, Any]) -> Span | None:
        """A request's span, begun now (where ``wants`` said so): under the caller's trace when
        its headers carry one."""
        if self._tracer is None:
            return None
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        parent = TraceContextTextMapPropagator().extract(dict(headers)) if "traceparent" in headers else None
        span: Span = self._tracer.start_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        return span

    def child(self, parent: Span, name: str, start: int, end: int, attributes: dict[str, Any]) -> None:
        """A finished part of ``parent``'s request, from ``start`` to ``end`` (ns since the epoch)."""
        if self._tracer is None:
            return
        from opentelemetry import trace

        context = trace.set_span_in_context(parent)
        span = self._tracer.start_span(name, context=context, start_time=start, attributes=attributes)
        span.end(end_time=end)

    def close(self) -> None:
        """Send what is left and stop."""
        if self._provider is not None:
            self._provider.shutdown()


def traces_url(endpoint: str) -> str:
    """Where an OTLP/HTTP receiver at ``endpoint`` takes spans."""
    return f"{endpoint.rstrip('/')}/v1/traces"


def traceparent(span: Span) -> str | None:
    """The W3C ``traceparent`` that puts an engine's spans under ``span`` (None: not sampled)."""
    ctx = span.get_span_context()
    if not ctx.is_valid or not ctx.trace_flags.sampled:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"


def ns_at(perf: float, base_perf: float, base_ns: int) -> int:
    """A ``time.perf_counter()`` reading as ns since the epoch, from one pair read together."""
    return base_ns + int((perf - base_perf) * 1e9)


def now_pair() -> tuple[float, int]:
    """``perf_counter()`` and ``time_ns()`` read together."""
    return time.perf_counter(), time.time_ns()
