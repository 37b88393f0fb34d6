"""A small Python HTTP service instrumented with the OpenTelemetry SDK, for the cross-language
test (tests/otlp_python.rs).

It exports its spans over OTLP/HTTP (protobuf) to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, and for
each `GET /checkout` it records a SERVER span, an INTERNAL span that records a handled
exception, and a CLIENT span for its call to DOWNSTREAM_URL, which carries the W3C
`traceparent` of that CLIENT span. It answers with the IDs of its spans and what the downstream
service answered, as JSON. It prints the port it listens on (127.0.0.1, chosen by the OS) on its
first line of output.
"""

import json
import os
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

DOWNSTREAM = os.environ["DOWNSTREAM_URL"]

provider = TracerProvider(resource=Resource.create({"service.name": "storefront"}))
# The endpoint comes from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, as in any deployment.
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("storefront")


def parse_cart(raw):
    return int(raw)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.startswith("/checkout"):
            self.send_error(404)
            return
        incoming = propagate.extract(dict(self.headers))
        with tracer.start_as_current_span(
            "GET /checkout",
            context=incoming,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "url.scheme": "http",
                "server.address": "storefront.local",
                "url.path": "/checkout",
                "aws.xray.annotations": ["customer"],
                "customer": "c-42",
            },
        ) as server:
            with tracer.start_as_current_span("parse cart", kind=SpanKind.INTERNAL) as parse:
                try:
                    parse_cart("not a number")
                except ValueError as e:
                    parse.record_exception(e)
                    parse.set_status(Status(StatusCode.ERROR, "bad cart"))
            with tracer.start_as_current_span(
                "GET",
                kind=SpanKind.CLIENT,
                attributes={"http.request.method": "GET", "url.full": DOWNSTREAM},
            ) as client:
                headers = {}
                propagate.inject(headers)
                request = urllib.request.Request(DOWNSTREAM, headers=headers)
                with urllib.request.urlopen(request, timeout=10) as response:
                    downstream = json.loads(response.read())
                    client.set_attribute("http.response.status_code", response.status)
            server.set_attribute("http.response.status_code", 200)
            ids = {
                "trace_id": format(server.get_span_context().trace_id, "032x"),
                "server": format(server.get_span_context().span_id, "016x"),
                "parse": format(parse.get_span_context().span_id, "016x"),
                "client": format(client.get_span_context().span_id, "016x"),
                "sent_traceparent": headers.get("traceparent", ""),
                "downstream": downstream,
            }
        # Export now rather than at the next batch, so the test need not wait.
        provider.force_flush(10_000)
        body = json.dumps(ids).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sys.stdout.write(f"{server.server_address[1]}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        provider.shutdown()


if __name__ == "__main__":
    main()
