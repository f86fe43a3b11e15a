"""Stop inside an MCP tool call, over stdio and over streamable HTTP: the turn stops at once
with one notice, the server is told to cancel that very request, and the next call goes over the
same connection. A call that outlives AGENT_MCP_CALL_TIMEOUT is cancelled the same way."""

import pytest

from agentproj.vocabulary import EventKind, StopReason, TurnStatus
from sessions_app.core import lifecycle, sessions
from tests.conftest import wait_for
from tests.mcp_helpers import HostThread, ServerLog, http_server, stdio_server

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture(params=["stdio", "http"])
def server_log(request, settings, tmp_path):
    log = ServerLog(tmp_path / "server.log")
    if request.param == "stdio":
        settings.AGENT_MCP_SERVERS = [stdio_server(log)]
        yield log
    else:
        with http_server(log) as url:
            settings.AGENT_MCP_SERVERS = [
                {"name": "testsrv", "url": url, "headers": {"X-Test-Token": "t0ken"}}
            ]
            yield log
    log.assert_every_server_exited()


@pytest.fixture
def host(server_log):
    running = HostThread().start()
    yield running
    running.close()


def _start(user, message: str):
    session = sessions.session_create(owner=user)
    return session, lifecycle.turn_start(session=session, message=message, actor=user)


def _next_turn(session, user, message: str):
    return lifecycle.turn_start(session=session, message=message, actor=user)


def test_it_stops_inside_a_call_tells_the_server_and_keeps_the_connection(
    llm, user, host, server_log
):
    session, turn = _start(user, 'call testsrv__slow {"label": "long"}')
    running = host.start_turn(turn.pk)
    started = server_log.wait_for("started")
    # The server's progress reaches the timeline while the call runs.
    progress = wait_for(lambda: turn.events.filter(kind=EventKind.TOOL_PROGRESS).first())
    connection = host.connection("testsrv")

    lifecycle.turn_request_cancel(session=session, actor=user)

    assert running.result(timeout=30) == TurnStatus.STOPPED
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert turn.stop_reason == StopReason.USER_CANCEL
    assert turn.events.filter(kind=EventKind.INTERRUPT).count() == 1
    assert not turn.events.filter(kind__in=[EventKind.TOOL_RESULT, EventKind.ERROR]).exists()
    call = turn.events.get(kind=EventKind.TOOL_CALL)
    assert call.data["tool"] == "testsrv__slow"
    assert call.data["policy"]["outcome"] == "allow"
    assert progress.data["tool_call_id"] == call.data["tool_call_id"]
    assert progress.data["message"] == "long: warming up"
    assert (progress.data["progress"], progress.data["total"]) == (1, 10)
    assert progress.seq < turn.events.get(kind=EventKind.INTERRUPT).seq
    cancelled = server_log.wait_for("cancelled")
    assert cancelled["request"] == started["request"]
    if server_log.entries("serving")[0]["transport"] == "stdio":
        told = server_log.wait_for("cancel_notification")
        assert str(told["request"]) == started["request"]
    else:
        assert started["token"] == "t0ken"
    # Over streamable HTTP the 2026-07-28 protocol cancels a request by closing its stream
    # (there are no client notifications on that wire): the server saw that for this request.
    assert server_log.entries("finished") == []
    assert len(llm.requests) == 1

    after = _next_turn(session, user, 'call testsrv__echo {"text": "after the stop"}')
    assert host.run_turn(after.pk) == TurnStatus.COMPLETED

    result = after.events.get(kind=EventKind.TOOL_RESULT)
    assert result.data["ok"] is True
    assert result.data["result"] == "echo: after the stop"
    assert host.connection("testsrv") is connection
    assert len(server_log.pids()) == 1


def test_it_cancels_a_call_that_outlives_the_timeout(llm, user, host, server_log, settings):
    settings.AGENT_MCP_CALL_TIMEOUT = 1
    session, turn = _start(user, 'call testsrv__slow {"label": "late"}')

    assert host.run_turn(turn.pk) == TurnStatus.COMPLETED

    started, cancelled = server_log.wait_for("started"), server_log.wait_for("cancelled")
    assert cancelled["request"] == started["request"]
    if server_log.entries("serving")[0]["transport"] == "stdio":
        assert str(server_log.wait_for("cancel_notification")["request"]) == started["request"]
    result = turn.events.get(kind=EventKind.TOOL_RESULT)
    assert result.data["ok"] is False
    assert result.data["result"] == (
        "The MCP server testsrv did not answer within 1 s; the call was cancelled."
    )
    assert llm.requests[-1].body["messages"][-1]["content"] == result.data["result"]

    after = _next_turn(session, user, 'call testsrv__echo {"text": "still here"}')
    assert host.run_turn(after.pk) == TurnStatus.COMPLETED
    assert after.events.get(kind=EventKind.TOOL_RESULT).data["result"] == "echo: still here"
    assert len(server_log.pids()) == 1
