"""One request through the gateway, measured: from its arrival to its answer's end, with its
wait for a slot, its first streamed chunk, its retries, and the tokens and images the engine
reports, written to the metrics and the usage meter when it ends."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import Request

from modelyard.gateway.checks import caller_of, state_of
from modelyard.metrics import Metrics, Series
from modelyard.runtime.admission import Lease
from modelyard.tracing import Tracing, now_pair, ns_at, traceparent
from modelyard.usage.meter import Meter

if TYPE_CHECKING:
    from opentelemetry.trace import Span

# a "usage" object, with at most one level of objects inside (prompt_tokens_details)
USAGE = re.compile(rb'"usage"\s*:\s*(\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\})')
TIMINGS = re.compile(rb'"timings"\s*:\s*(\{[^{}]*\})')
TAIL = 3  # streamed chunks kept to find the usage in: it comes last, before [DONE]


def counted(answer: bytes) -> tuple[int, int]:
    """Tokens in and out as the engine reports them at the end of ``answer`` (a JSON body or
    the last events of a stream): OpenAI's or Anthropic's usage, else llama-server's timings."""
    at = answer.rfind(b'"usage"')
    if at >= 0 and (m := USAGE.match(answer, at)):
        return tokens_of(orjson.loads(m.group(1)))
    at = answer.rfind(b'"timings"')
    if at >= 0 and (m := TIMINGS.match(answer, at)):
        t = orjson.loads(m.group(1))
        return int(t.get("prompt_n") or 0) + int(t.get("cache_n") or 0), int(t.get("predicted_n") or 0)
    return 0, 0


@dataclass(frozen=True, slots=True)
class Timings:
    """What llama-server (and modelyard's runner) report beside the usage: prompt tokens its
    cache held and those it computed (in milliseconds), tokens drafted and accepted, and the
    decode (tokens, milliseconds)."""

    cached: int = 0
    prompt: int = 0
    prompt_ms: float = 0.0
    drafted: int = 0
    accepted: int = 0
    decoded: int = 0
    decode_ms: float = 0.0


def timings_of(answer: bytes) -> Timings:
    """The timings at the end of ``answer``; zeros where it has none."""
    at = answer.rfind(b'"timings"')
    if at < 0 or not (m := TIMINGS.match(answer, at)):
        return Timings()
    t = orjson.loads(m.group(1))
    return Timings(
        cached=int(t.get("cache_n") or 0),
        prompt=int(t.get("prompt_n") or 0),
        prompt_ms=float(t.get("prompt_ms") or 0.0),
        drafted=int(t.get("draft_n") or 0),
        accepted=int(t.get("draft_n_accepted") or 0),
        decoded=int(t.get("predicted_n") or 0),
        decode_ms=float(t.get("predicted_ms") or 0.0),
    )


def with_prediction_usage(answer: bytes) -> bytes:
    """A JSON answer whose engine drafted tokens, with OpenAI's accepted and rejected prediction
    tokens in its usage (from llama-server's timings)."""
    t = timings_of(answer)
    drafted, accepted = t.drafted, t.accepted
    try:
        body = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return answer
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return answer
    details = usage.setdefault("completion_tokens_details", {})
    details.update(accepted_prediction_tokens=accepted, rejected_prediction_tokens=drafted - accepted)
    return orjson.dumps(body)


def tokens_of(usage: Any) -> tuple[int, int]:
    """Tokens in and out of a usage object, OpenAI's or Anthropic's."""
    if not isinstance(usage, dict):
        return 0, 0
    tokens_in = usage.get("prompt_tokens", usage.get("input_tokens")) or 0
    tokens_out = usage.get("completion_tokens", usage.get("output_tokens")) or 0
    return int(tokens_in), int(tokens_out)


def images_in(answer: bytes) -> int:
    """Images in an images answer: one per b64_json or url."""
    return answer.count(b'"b64_json"') + answer.count(b'"url"')


@dataclass(slots=True)
class Exchange:
    metrics: Metrics
    meter: Meter
    model: str
    endpoint: str
    key: str | None
    series: Series
    start: float = field(default_factory=time.perf_counter)
    tokens_in: int = 0
    tokens_out: int = 0
    images: int = 0
    timings: Timings = Timings()  # cached prompt tokens, drafts, the decode, as the engine says
    placed: bool = False  # it had a slot once (a retry waits again, not counted again)
    lease: Lease | None = None  # its slot (the last one, after retries)
    leased: float = 0.0  # when it had that slot
    first: float = 0.0  # when its answer's first chunk went out
    done: bool = False
    trace: Trace | None = None  # its span, where the server traces requests

    @classmethod
    def of(cls, request: Request, model: str, endpoint: str) -> Exchange:
        """A request to ``model``'s ``endpoint`` that begins now (on modelyard's app, or on the
        Ollama listener's, which holds modelyard's as ``main``)."""
        state = state_of(request)
        metrics: Metrics = state.metrics
        key = caller_of(request).account
        exchange = cls(metrics, state.meter, model, endpoint, key, metrics.series(model, endpoint))
        tracing: Tracing = state.tracing
        if tracing.enabled and tracing.wants(request.headers):
            exchange.trace = Trace.of(tracing, request, exchange)
        return exchange

    def moved(self, model: str) -> None:
        """It goes to ``model`` now (a route's next target): counted for that model."""
        self.model, self.series = model, self.metrics.series(model, self.endpoint)

    def waited(self, lease: Lease) -> None:
        """It has a slot now."""
        self.lease, self.leased = lease, time.perf_counter()
        if not self.placed:
            self.placed = True
            self.series.wait.observe(self.leased - self.start)

    def retried(self) -> None:
        self.series.retries.inc()

    def began(self) -> None:
        """Its answer's first chunk went out."""
        self.first = time.perf_counter()
        self.series.ttft.observe(self.first - self.start)

    def answered(self, answer: bytes) -> None:
        """Count what the engine reports in ``answer`` (a body, or a stream's last chunks)."""
        self.tokens_in, self.tokens_out = counted(answer)
        if b'"timings"' in answer:
            self.timings = timings_of(answer)
        if self.endpoint == "images":
            self.images = images_in(answer)

    def usage(self, usage: Any) -> None:
        """Count a usage object the engine sent."""
        if usage:
            self.tokens_in, self.tokens_out = tokens_of(usage)

    def finish(self, status: int) -> None:
        """It ended with ``status``: record it (once)."""
        if self.done:
            return
        self.done = True
        s = self.series
        self.metrics.status(s, self.model, self.endpoint, status).inc()
        s.latency.observe(time.perf_counter() - self.start)
        if self.tokens_in:
            s.tokens_in.inc(self.tokens_in)
        if self.tokens_out:
            s.tokens_out.inc(self.tokens_out)
        if self.images:
            s.images.inc(self.images)
        t = self.timings
        if t.cached:
            s.cached.inc(t.cached)
        if t.drafted:
            s.count_drafts(t.drafted, t.accepted)
        if t.decoded and t.decode_ms > 0:
            s.count_decode(t.decoded, t.decode_ms / 1000)
        self.meter.add(
            self.model, self.key, requests=1, tokens_in=self.tokens_in, tokens_out=self.tokens_out,
            images=self.images,
        )  # fmt: skip
        if self.trace is not None:
            self.trace.end(self, status)
        if self.lease is not None and status in (200, 499):  # what routing learns of the engine
            if t.prompt_ms > 0:  # the engine's own count and time of its prefill
                self.lease.report(t.prompt + t.cached, t.cached, t.prompt_ms / 1000)
            else:  # from the usage, and the time to a stream's first chunk
                prefill = self.first - self.leased if self.first > self.leased else None
                self.lease.report(self.tokens_in, None, prefill)


@dataclass(slots=True)
class Trace:
    """A traced request's span, and the clock readings that place its parts."""

    tracing: Tracing
    span: Span
    parent: str | None  # the traceparent its engine gets
    perf: float  # perf_counter() and time_ns() read together as it began
    ns: int

    @classmethod
    def of(cls, tracing: Tracing, request: Request, exchange: Exchange) -> Trace | None:
        attributes = {
            "modelyard.model": exchange.model,
            "modelyard.endpoint": exchange.endpoint,
            "modelyard.key": exchange.key or "local",
        }
        span = tracing.begin(f"{request.method} {request.url.path}", request.headers, attributes)
        if span is None:
            return None
        perf, ns = now_pair()
        return cls(tracing, span, traceparent(span), perf, ns)

    def end(self, exchange: Exchange, status: int) -> None:
        """The request ended with ``status``: its parts as child spans, then its own end."""
        now = time.perf_counter()

        def at(perf: float) -> int:
            return ns_at(perf, self.perf, self.ns)

        e, parts = exchange, self.tracing.child
        if e.placed:
            parts(self.span, "queue", at(max(e.start, self.perf)), at(e.leased), {"modelyard.model": e.model})
            upstream = {"modelyard.model": e.model, "modelyard.instance": e.lease.url if e.lease else ""}
            parts(self.span, "upstream", at(e.leased), at(e.first or now), upstream)
            if e.first:
                parts(self.span, "answer", at(e.first), at(now), {"modelyard.model": e.model})
        self.span.set_attributes({
            "modelyard.model": e.model,  # the one that served it (a route's target)
            "http.response.status_code": status,
            "modelyard.tokens_in": e.tokens_in,
            "modelyard.tokens_out": e.tokens_out,
        })  # fmt: skip
        self.span.end(end_time=at(now))
