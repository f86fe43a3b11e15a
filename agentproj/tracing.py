"""OpenTelemetry traces: one trace per turn, from the request that starts it to its last run.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (``settings.TRACES_ENABLED``): then every span
made here is the API's no-op span and the SDK is never loaded. On, each process that makes spans
(the web processes, the worker processes) calls ``configure`` once, which loads the SDK and the
OTLP/HTTP exporter (``agentproj.tracing_export``), and ``shutdown`` when it ends, so the spans
it still holds are sent.

A turn's trace crosses processes: the request that queues it stores its W3C ``traceparent`` on
the turn (``current_traceparent``), and every run of the turn, a resume after an approver's
decision too, takes its parent from there (``context_of``). Inside a worker many turns share one
event loop, so spans are made with the explicit parent each turn carries (a ``Context``), never
from whatever context is current; only a library that reads the current context (the MCP SDK,
which puts it in a request's ``_meta``) is given one, for the duration of its call
(``current``).

Span names and attributes follow OpenTelemetry's GenAI semantic conventions.
"""

import atexit
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from django.conf import settings
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# What a span is before it starts (a turn not loaded yet): it records nothing.
NO_SPAN = trace.INVALID_SPAN
# A proxy until ``configure`` installs the SDK's provider: the API's no-op tracer meanwhile.
tracer = trace.get_tracer("agentproj")
_propagator = TraceContextTextMapPropagator()
_configured = False
# How long a process that ends waits for its last spans to be sent: a collector that is down
# (the exporter retries for up to OTEL_EXPORTER_OTLP_TIMEOUT) must not hold up a worker's drain
# or a web process's exit past what ``serve`` allows them.
FLUSH_TIMEOUT = 3.0

# GenAI semantic conventions' attribute names.
OPERATION = "gen_ai.operation.name"
AGENT_NAME = "gen_ai.agent.name"
AGENT_ID = "gen_ai.agent.id"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
ERROR_TYPE = "error.type"
# Ours.
TURN_ID = "agentproj.turn.id"
TURN_STATUS = "agentproj.turn.status"
STOP_REASON = "agentproj.stop_reason"
APPROVAL_OUTCOME = "agentproj.approval.outcome"


def configure(*, instrument_requests: bool = False) -> bool:
    """Export this process's spans, if the deployment asks for traces; False when it does not.

    ``instrument_requests``: a web process also gets a SERVER span per request (Django's
    instrumentation), the parent of the turn a request starts. A worker process calls it once
    forked (``runtime.worker.hosting_worker``): the exporter's thread would not survive a fork.
    """
    global _configured
    if not settings.TRACES_ENABLED or _configured:
        return _configured
    # Loaded only here: the SDK and the exporter cost some 35 MB and 0.1 s in every process that
    # imports them, and a deployment without traces needs neither.
    from agentproj.tracing_export import install

    install(settings.OTEL_SERVICE_NAME, instrument_requests=instrument_requests)
    _configured = True
    # A web process ends through the interpreter's exit; a worker process calls it itself.
    atexit.register(shutdown)
    return True


def shutdown() -> None:
    """Send the spans this process still holds, before it exits, for at most
    ``FLUSH_TIMEOUT`` seconds."""
    global _configured
    if not _configured:
        return
    _configured = False
    provider = trace.get_tracer_provider()
    sending = threading.Thread(target=provider.shutdown, name="spans-flush", daemon=True)
    try:
        sending.start()
    except RuntimeError:
        # An interpreter that is exiting may start no thread (Python 3.12 and later): send from
        # here, as long as the exporter takes.
        provider.shutdown()
        return
    sending.join(FLUSH_TIMEOUT)


def current_traceparent() -> str:
    """The W3C ``traceparent`` of the span current here (a request's), "" when none records."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent", "")


def context_of(traceparent: str) -> Context:
    """A context whose parent span is the one ``traceparent`` names; an empty context (a new
    trace) for "" or a value that does not parse."""
    if not traceparent:
        return Context()
    return _propagator.extract({"traceparent": traceparent}, context=Context())


def inside(span: Span) -> Context:
    """The context of ``span``'s children."""
    return trace.set_span_in_context(span, Context())


def start_span(
    name: str,
    *,
    parent: Context,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: dict | None = None,
    start_time: int | None = None,
) -> Span:
    """A span under ``parent`` (never the current context); the caller ends it."""
    return tracer.start_span(
        name, context=parent, kind=kind, attributes=attributes, start_time=start_time
    )


@contextmanager
def current(parent: Context) -> Iterator[None]:
    """Make ``parent`` the current context of this task for a library that reads it."""
    token = otel_context.attach(parent)
    try:
        yield
    finally:
        otel_context.detach(token)


def fail(span: Span, error_type: str, description: str = "") -> None:
    """Mark ``span`` as failed, its cause a short stable code (an error code, an exception's
    class name)."""
    span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, description or error_type))


def record_span(
    name: str,
    *,
    traceparent: str,
    start: datetime,
    end: datetime,
    attributes: dict,
    link_current: bool = False,
) -> None:
    """A span of something that already happened, known only at its end (a turn's wait in the
    queue, a request's wait for its approver), in the turn's trace ``traceparent`` names;
    nothing for a turn without one. ``link_current``: linked to the span current here (the
    approver's request), which belongs to a trace of its own."""
    if not traceparent:
        return
    links: Sequence[Link] = ()
    if link_current:
        here = trace.get_current_span().get_span_context()
        links = [Link(here)] if here.is_valid else ()
    span = tracer.start_span(
        name,
        context=context_of(traceparent),
        attributes=attributes,
        links=links,
        start_time=_nanoseconds(start),
    )
    span.end(end_time=_nanoseconds(end))


def _nanoseconds(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)
