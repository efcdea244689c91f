"""An OTLP/HTTP receiver on 127.0.0.1 for the tracing tests: the spans every POST /v1/traces
(protobuf) brings, by service and name, with their ids."""

from __future__ import annotations

import asyncio

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from background import Background


class Receiver(Background):
    """An OTLP/HTTP receiver: the spans of every POST /v1/traces (protobuf)."""

    url = ""  # where it listens, once started

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[str, str]] = []  # (service, span name)
        self.ids: dict[str, tuple[str, str, str]] = {}  # span name -> (trace, span, parent), hex
        self.traced: list[tuple[str, str, str, str, str]] = []  # (service, name, trace, span, parent)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/traces", self.traces)]

    async def traces(self, r: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await r.read())
        for resource in export.resource_spans:
            service = next(
                a.value.string_value for a in resource.resource.attributes if a.key == "service.name"
            )
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.append((service, span.name))
                    ids = (span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex())
                    self.ids[span.name] = ids
                    self.traced.append((service, span.name, *ids))
        await asyncio.sleep(0)
        return web.Response(status=200, content_type="application/x-protobuf", body=b"")
