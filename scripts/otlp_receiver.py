"""A small OTLP/HTTP receiver of traces: to see agentproj's traces without a collector.

    .venv/bin/python scripts/otlp_receiver.py --port 4318

then start agentproj with ``OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318``. Each trace is
printed as a tree once no span of it has arrived for ``--quiet-after`` seconds (again if more
come later): the request, the turn's wait in the queue, each run of the agent, its model calls
and tool calls, and a wait for an approver.

The tests use ``OtlpReceiver`` itself: a thread that decodes every ``ExportTraceServiceRequest``
(protobuf, as the SDK's exporter sends it) into ``ReceivedSpan``s.
"""

import argparse
import gzip
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TRACES_PATH = "/v1/traces"


@dataclass
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    status: str
    status_message: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    service: str
    events: list[str] = field(default_factory=list)
    # (trace id, span id) of each linked span.
    links: list[tuple[str, str]] = field(default_factory=list)

    @property
    def milliseconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _value(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one ``ExportTraceServiceRequest``."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                        status=Status.StatusCode.Name(span.status.code).removeprefix(
                            "STATUS_CODE_"
                        ),
                        status_message=span.status.message,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        service=resource.get("service.name", ""),
                        events=[event.name for event in span.events],
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                    )
                )
    return spans


class OtlpReceiver:
    """An OTLP/HTTP endpoint on loopback, in a thread: ``endpoint`` is what
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` should say."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.last_arrival: dict[str, float] = {}
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self.endpoint = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "OtlpReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def received(self, spans: list[ReceivedSpan]) -> None:
        with self.arrived:
            self.spans.extend(spans)
            now = time.monotonic()
            for span in spans:
                self.last_arrival[span.trace_id] = now
            self.arrived.notify_all()

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self.lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def wait_for(self, predicate, timeout: float) -> list[ReceivedSpan]:
        """The spans received, once ``predicate`` holds of them."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not predicate(list(self.spans)):
                left = deadline - time.monotonic()
                if left <= 0:
                    names = sorted(span.name for span in self.spans)
                    raise AssertionError(f"spans received ({len(names)}): {names}")
                self.arrived.wait(left)
            return list(self.spans)


def _handler(receiver: OtlpReceiver):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            return

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != TRACES_PATH:
                self.send_error(404)
                return
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            receiver.received(decode(body))
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler


# Attributes worth a glance in a printed tree.
SHOWN_ATTRIBUTES = (
    "http.route",
    "http.response.status_code",
    "http.status_code",
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.tool.call.id",
    "agentproj.turn.id",
    "agentproj.turn.status",
    "agentproj.stop_reason",
    "agentproj.approval.outcome",
    "error.type",
)


def tree(spans: list[ReceivedSpan]) -> str:
    """One trace as an indented tree, children in the order they started."""
    ids = {span.span_id for span in spans}
    children = defaultdict(list)
    for span in sorted(spans, key=lambda s: s.start_ns):
        children[span.parent_span_id if span.parent_span_id in ids else ""].append(span)
    origin = min(span.start_ns for span in spans)
    lines = [f"trace {spans[0].trace_id} ({spans[0].service})"]

    def walk(parent: str, depth: int) -> None:
        for span in children[parent]:
            shown = " ".join(
                f"{key}={span.attributes[key]}"
                for key in SHOWN_ATTRIBUTES
                if key in span.attributes
            )
            status = "" if span.status == "UNSET" else f" {span.status}"
            lines.append(
                f"{'  ' * depth}- {span.name} [{span.kind.lower()}{status}] "
                f"+{(span.start_ns - origin) / 1e6:.0f} ms, {span.milliseconds:.0f} ms {shown}"
            )
            walk(span.span_id, depth + 1)

    walk("", 1)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--quiet-after", type=float, default=3.0)
    options = parser.parse_args()
    with OtlpReceiver(options.host, options.port) as receiver:
        print(f"Receiving traces at {receiver.endpoint}{TRACES_PATH}; Ctrl-C stops.", flush=True)
        printed: dict[str, float] = {}
        try:
            while True:
                time.sleep(0.5)
                quiet_since = time.monotonic() - options.quiet_after
                with receiver.lock:
                    ready = [
                        trace_id
                        for trace_id, arrived in receiver.last_arrival.items()
                        if arrived < quiet_since and printed.get(trace_id) != arrived
                    ]
                    for trace_id in ready:
                        printed[trace_id] = receiver.last_arrival[trace_id]
                for trace_id in ready:
                    print(tree(receiver.trace(trace_id)) + "\n", flush=True)
        except KeyboardInterrupt:
            return


if __name__ == "__main__":
    main()
