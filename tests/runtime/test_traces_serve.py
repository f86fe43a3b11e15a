"""Traces from a real ``serve`` to a real OTLP/HTTP receiver on loopback (``scripts/
otlp_receiver.py``): a turn's spans, from the request that sent its message through its wait in
the queue and its runs in a worker process, its wait for an approver and a resume after it, are
one trace; a stopped turn's spans are no error, a failed turn's are.

Everything goes through the HTTP API as people use it, so that every span is made in ``serve``'s
own processes and reaches the receiver as a deployment's would.
"""

import json
import signal
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token

from agentproj.vocabulary import EventKind, TurnStatus
from scripts.otlp_receiver import OtlpReceiver, ReceivedSpan
from sessions_app.models import Turn
from tests.conftest import ASK_FOR_EMAIL, PROCESS_EXIT_TIMEOUT, subprocess_env, wait_for
from tests.processes import (
    alive,
    descendants,
    free_port,
    start_serve,
    stop_or_fail,
    wait_until_serving,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

# Bound how long a broken test waits; never a claim about speed.
SERVE_START_TIMEOUT = 90
TURN_TIMEOUT = 60
SPANS_TIMEOUT = 30


class Serve:
    def __init__(self, llm, receiver: OtlpReceiver, tmp_path: Path, **extra_env: str):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = subprocess_env(
            **{
                "LLM_BASE_URL": llm.base_url,
                "LLM_RETRY_BASE_DELAY": "0.05",
                "AGENTPROJ_ADMIN_PASSWORD": "traces-test-password",
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_SERVICE_NAME": "agentproj-traces-test",
                # Spans go out a tenth of a second after they end, not the default five.
                "OTEL_BSP_SCHEDULE_DELAY": "100",
                **extra_env,
            }
        )
        log = tmp_path / "serve.log"
        self.process = start_serve(self.port, self.env, log, "--workers", "1")
        wait_until_serving(
            self.process, f"{self.base_url}/accounts/login/", log, SERVE_START_TIMEOUT
        )

    def api(self, method: str, path: str, token: Token, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=json.dumps(body or {}).encode(),
            headers={"Authorization": f"Token {token.key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def send(self, token: Token, message: str) -> Turn:
        session = self.api("POST", "/api/sessions/", token)
        path = f"/api/sessions/{session['id']}/turns/"
        sent = self.api("POST", path, token, {"message": message})
        return Turn.objects.get(pk=sent["id"])


@pytest.fixture
def receiver():
    with OtlpReceiver() as receiving:
        yield receiving


@pytest.fixture
def start_serve_traced(llm, receiver, tmp_path):
    """Start ``serve`` (with extra environment); after the test it must exit, with everything
    it started, or the test fails."""
    started: list[Serve] = []

    def start(**extra_env: str) -> Serve:
        started.append(Serve(llm, receiver, tmp_path, **extra_env))
        return started[-1]

    yield start
    for served in started:
        stop_or_fail(served.process, timeout=PROCESS_EXIT_TIMEOUT, name="serve")


@pytest.fixture
def serve(start_serve_traced):
    return start_serve_traced()


def status_of(turn: Turn) -> str:
    return Turn.objects.values_list("status", flat=True).get(pk=turn.pk)


def trace_of(turn: Turn) -> tuple[str, str]:
    """(trace id, span id) of the request that started ``turn``, from its W3C traceparent."""
    _version, trace_id, span_id, _flags = Turn.objects.get(pk=turn.pk).traceparent.split("-")
    return trace_id, span_id


def spans_of(receiver: OtlpReceiver, trace_id: str, *names: str) -> dict[str, list]:
    """The trace's spans by name, once every one of ``names`` (a name twice: two spans) came."""
    wanted = {name: names.count(name) for name in names}

    def complete(spans: list[ReceivedSpan]) -> bool:
        named = [span.name for span in spans if span.trace_id == trace_id]
        return all(named.count(name) >= count for name, count in wanted.items())

    receiver.wait_for(complete, timeout=SPANS_TIMEOUT)
    found: dict[str, list] = {}
    for span in sorted(receiver.trace(trace_id), key=lambda s: s.start_ns):
        found.setdefault(span.name, []).append(span)
    return found


def test_a_turn_with_a_tool_call_and_an_approval_is_one_trace(serve, receiver, llm, user, approver):
    user_token, approver_token = (
        Token.objects.create(user=user),
        Token.objects.create(user=approver),
    )
    turn = serve.send(user_token, ASK_FOR_EMAIL)
    wait_for(lambda: status_of(turn) == TurnStatus.WAITING_FOR_APPROVAL, timeout=TURN_TIMEOUT)
    approval = turn.approval_requests.get()
    serve.api("POST", f"/api/approvals/{approval.pk}/approve/", approver_token)
    wait_for(lambda: status_of(turn) == TurnStatus.COMPLETED, timeout=TURN_TIMEOUT)

    trace_id, post_span_id = trace_of(turn)
    model = f"chat {settings.LLM_MODEL}"
    spans = spans_of(
        receiver,
        trace_id,
        "queue wait",
        "queue wait",
        "invoke_agent Default",
        "invoke_agent Default",
        model,
        model,
        "execute_tool send_email",
        "await_approval send_email",
    )
    (post,) = [span for span in receiver.trace(trace_id) if span.kind == "SERVER"]
    # The request that sent the message is the trace's root, in the web process.
    assert post.span_id == post_span_id
    assert post.parent_span_id == ""
    assert post.name.startswith("POST ")
    assert post.attributes["http.route"] == "api/sessions/<uuid:session_id>/turns/"
    assert post.service == "agentproj-traces-test"

    asked, resumed = spans["invoke_agent Default"]
    first_wait, second_wait = spans["queue wait"]
    (waited,) = spans["await_approval send_email"]
    # Under the request: each run, its wait in the queue, and the wait for the approver.
    for span in (asked, resumed, first_wait, second_wait, waited):
        assert span.parent_span_id == post.span_id
        assert span.attributes["agentproj.turn.id"] == turn.pk
    assert asked.attributes["agentproj.turn.status"] == TurnStatus.WAITING_FOR_APPROVAL
    assert resumed.attributes["agentproj.turn.status"] == TurnStatus.COMPLETED
    assert asked.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert asked.attributes["gen_ai.agent.name"] == "Default"
    assert asked.attributes["gen_ai.conversation.id"] == str(turn.session_id)
    assert first_wait.end_ns <= asked.start_ns + 50_000_000
    assert waited.attributes["agentproj.approval.outcome"] == "approved"
    assert waited.attributes["gen_ai.tool.call.id"] == approval.tool_call_id
    assert asked.end_ns <= waited.end_ns <= resumed.start_ns
    # Linked to the approver's request, a trace of its own.
    (decided,) = [link for link in waited.links if link[0] != trace_id]
    assert decided

    # One model call in each run: it asks for the e-mail, then answers after it went.
    asking, answering = spans[model]
    assert asking.parent_span_id == asked.span_id
    assert answering.parent_span_id == resumed.span_id
    for call in (asking, answering):
        assert call.kind == "CLIENT"
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.request.model"] == settings.LLM_MODEL
        assert call.attributes["gen_ai.usage.input_tokens"] > 0
        assert call.attributes["gen_ai.usage.output_tokens"] > 0
    assert asking.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]

    (sent,) = spans["execute_tool send_email"]
    assert sent.parent_span_id == resumed.span_id
    assert sent.attributes["gen_ai.tool.name"] == "send_email"
    assert sent.attributes["gen_ai.tool.call.id"] == approval.tool_call_id
    assert answering.start_ns >= sent.end_ns

    assert {span.status for span in receiver.trace(trace_id)} == {"UNSET"}
    assert {span.service for span in receiver.trace(trace_id)} == {"agentproj-traces-test"}


def test_a_stopped_turn_is_no_error_and_a_failed_one_is(serve, receiver, llm, user):
    token = Token.objects.create(user=user)
    llm.token_delay = 0.05
    stopped = serve.send(token, "tell me a story")
    wait_for(
        lambda: stopped.events.filter(kind=EventKind.ASSISTANT_MESSAGE).exists(),
        timeout=TURN_TIMEOUT,
    )
    serve.api("POST", f"/api/sessions/{stopped.session_id}/cancel/", token)
    wait_for(lambda: status_of(stopped) == TurnStatus.STOPPED, timeout=TURN_TIMEOUT)

    trace_id, _ = trace_of(stopped)
    spans = spans_of(receiver, trace_id, "invoke_agent Default", f"chat {settings.LLM_MODEL}")
    (run,) = spans["invoke_agent Default"]
    assert run.attributes["agentproj.turn.status"] == TurnStatus.STOPPED
    assert run.attributes["agentproj.stop_reason"] == "user_cancel"
    assert {span.status for span in receiver.trace(trace_id)} == {"UNSET"}

    # The model server fails every try: the turn fails, and so do its spans.
    llm.fail(500, times=settings.LLM_MAX_RETRIES + 1)
    failed = serve.send(token, "hello")
    wait_for(lambda: status_of(failed) == TurnStatus.FAILED, timeout=TURN_TIMEOUT)

    trace_id, _ = trace_of(failed)
    spans = spans_of(receiver, trace_id, "invoke_agent Default", f"chat {settings.LLM_MODEL}")
    (run,) = spans["invoke_agent Default"]
    (call,) = spans[f"chat {settings.LLM_MODEL}"]
    assert run.status == "ERROR"
    assert run.attributes["agentproj.turn.status"] == TurnStatus.FAILED
    assert run.attributes["error.type"] == "llm_error"
    assert call.status == "ERROR"
    assert call.attributes["error.type"] == "server_error"
    assert call.events == ["retry"] * settings.LLM_MAX_RETRIES
    assert call.parent_span_id == run.span_id


def test_processes_send_the_spans_they_hold_when_they_stop(start_serve_traced, receiver, user):
    # Nothing is sent on a schedule: only a process that ends sends what it holds.
    serve = start_serve_traced(OTEL_BSP_SCHEDULE_DELAY="600000")
    token = Token.objects.create(user=user)
    turn = serve.send(token, "what time is it?")
    wait_for(lambda: status_of(turn) == TurnStatus.COMPLETED, timeout=TURN_TIMEOUT)
    trace_id, post_span_id = trace_of(turn)
    assert receiver.trace(trace_id) == []

    family = descendants(serve.process.pid)
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(timeout=PROCESS_EXIT_TIMEOUT) == 0
    assert alive(family) == set()

    model = f"chat {settings.LLM_MODEL}"
    names = ("queue wait", "invoke_agent Default", model, model, "execute_tool get_time")
    spans = spans_of(receiver, trace_id, *names)
    # From the web process, at its exit, and from the worker process, at the end of its drain.
    (post,) = [span for span in receiver.trace(trace_id) if span.kind == "SERVER"]
    assert post.span_id == post_span_id
    (run,) = spans["invoke_agent Default"]
    assert run.parent_span_id == post.span_id
    assert spans["execute_tool get_time"][0].parent_span_id == run.span_id
