"""An MCP server that dies in the middle of a call: the model gets a tool error and the turn
ends cleanly; the next turn starts the server again."""

import os
import signal

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.models import McpServer
from tests.mcp_helpers import HostThread

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def host(server_log):
    running = HostThread().start()
    yield running
    running.close()


def test_it_reports_a_server_killed_mid_call_and_reconnects(llm, user, host, server_log):
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(
        session=session, message='call testsrv__slow {"label": "doomed"}', actor=user
    )
    running = host.start_turn(turn.pk)
    started = server_log.wait_for("started")

    os.kill(started["pid"], signal.SIGKILL)

    assert running.result(timeout=30) == TurnStatus.COMPLETED
    turn.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    result = turn.events.get(kind=EventKind.TOOL_RESULT)
    assert result.data["ok"] is False
    assert result.data["result"] == (
        "The MCP server testsrv closed the connection (it may have stopped); "
        "it is started again for the next call."
    )
    assert llm.requests[-1].body["messages"][-1]["content"] == result.data["result"]
    assert not turn.events.filter(kind=EventKind.ERROR).exists()

    again = lifecycle.turn_start(
        session=session, message='call testsrv__echo {"text": "are you back?"}', actor=user
    )
    assert host.run_turn(again.pk) == TurnStatus.COMPLETED

    assert again.events.get(kind=EventKind.TOOL_RESULT).data["result"] == "echo: are you back?"
    echoed = server_log.entries("echo")
    assert len(echoed) == 1
    assert echoed[0]["pid"] != started["pid"]


def test_a_server_that_cannot_start_leaves_the_turn_without_its_tools(
    llm, user, settings, run_turn_in_thread
):
    settings.AGENT_MCP_SERVERS = [{"name": "broken", "command": "/nonexistent/mcp-server"}]
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="hello", actor=user)

    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED

    offered = [tool["function"]["name"] for tool in llm.requests[0].body["tools"]]
    assert offered == ["get_time", "send_email", "delegate"]
    server = McpServer.objects.get(name="broken")
    assert server.discovery_problem.startswith("could not be started: ")
    assert server.tools_discovered_at is None
