"""The OpenTelemetry SDK as this app installs it: spans batched and sent over OTLP/HTTP to the
collector the standard ``OTEL_EXPORTER_OTLP_*`` variables name, and (in a web process) a SERVER
span for each request. Loaded by ``agentproj.tracing.configure`` only when traces are on."""

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def install(service_name: str, *, instrument_requests: bool) -> None:
    """The process's tracer provider. The sampler and the batching follow their ``OTEL_*``
    variables; what it holds at the end is sent by ``agentproj.tracing.shutdown``, which bounds
    the wait (the SDK's own exit handler would not)."""
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service_name}), shutdown_on_exit=False
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    if instrument_requests:
        # Adds its middleware to settings.MIDDLEWARE: called before Django builds its handler.
        DjangoInstrumentor().instrument(tracer_provider=provider)
