"""The spans a turn host makes, read in-process from an SDK tracer with an in-memory exporter:
an MCP server gets the call's trace context in its request's ``_meta``, and a sub-agent's run is
a span under its parent's ``execute_tool delegate``. (``test_traces_serve`` sends a whole turn's
spans from real processes to a real receiver.)"""

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentproj import tracing
from agentproj.vocabulary import TurnStatus
from sessions_app.core import lifecycle, sessions

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def exported(monkeypatch):
    """The spans ``agentproj.tracing`` makes in this process, as they end."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", provider.get_tracer("agentproj"))
    yield exporter
    provider.shutdown()


def start_turn(user, message: str):
    """A turn started inside a request's span, as a traced web process starts one."""
    with tracing.tracer.start_as_current_span("POST turns") as request:
        session = sessions.session_create(owner=user)
        turn = lifecycle.turn_start(session=session, message=message, actor=user)
    return turn, request.get_span_context()


def by_name(exported: InMemorySpanExporter) -> dict:
    spans: dict = {}
    for span in exported.get_finished_spans():
        spans.setdefault(span.name, []).append(span)
    return spans


def test_an_mcp_request_carries_the_trace_context_in_its_meta(
    llm, user, exported, server_log, run_turn_in_thread
):
    turn, request = start_turn(user, 'call testsrv__echo {"text": "traced"}')

    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED

    (call,) = by_name(exported)["execute_tool testsrv__echo"]
    (echoed,) = server_log.entries("echo")
    _version, trace_id, parent_id, _flags = echoed["traceparent"].split("-")
    assert int(trace_id, 16) == request.trace_id == call.context.trace_id
    # The SDK's span of the request would come between where traces are exported; here only
    # agentproj's spans record, so the server's parent is the call's span itself.
    assert int(parent_id, 16) == call.context.span_id
    assert call.attributes["gen_ai.tool.name"] == "testsrv__echo"


def test_a_sub_agent_runs_under_its_parents_tool_call(llm, user, exported, run_turn_in_thread):
    turn, request = start_turn(user, "delegate say hello")

    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED

    spans = by_name(exported)
    parent, child = sorted(spans["invoke_agent Default"], key=lambda span: span.start_time)
    (delegated,) = spans["execute_tool delegate"]
    assert parent.parent.span_id == request.span_id
    assert delegated.parent.span_id == parent.context.span_id
    assert child.parent.span_id == delegated.context.span_id
    assert child.attributes["agentproj.turn.status"] == TurnStatus.COMPLETED
    assert {span.context.trace_id for span in exported.get_finished_spans()} == {request.trace_id}
