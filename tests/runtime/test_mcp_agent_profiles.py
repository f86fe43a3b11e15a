"""An agent profile decides which MCP tools its sessions get: the default profile every
configured server's, another only the servers and tools it lists."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Agent, Turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def ask(llm, user, run_turn_in_thread, server_log):
    def ask(agent: Agent | None, message: str) -> Turn:
        session = sessions.session_create(owner=user, agent=agent)
        turn = lifecycle.turn_start(session=session, message=message, actor=user)
        run_turn_in_thread(turn.pk).join()
        turn.refresh_from_db()
        return turn

    return ask


def offered(request) -> set[str]:
    return {tool["function"]["name"] for tool in request.body.get("tools", [])}


def server_tools(request) -> set[str]:
    return {name for name in offered(request) if name.startswith("testsrv__")}


def test_the_default_profile_gets_every_configured_servers_tools(ask, llm):
    turn = ask(None, 'call testsrv__echo {"text": "hello"}')

    assert turn.status == TurnStatus.COMPLETED
    assert {"testsrv__echo", "testsrv__wipe"} <= server_tools(llm.requests[0])
    assert turn.events.get(kind=EventKind.TOOL_RESULT).data["result"] == "echo: hello"


def test_a_profile_without_the_servers_tools_never_offers_or_runs_them(ask, llm, server_log):
    clock = Agent.objects.create(name="Clock", tools=["get_time"])
    # A model that calls a tool it was not offered gets an error, and nothing runs.
    llm.reply(tool_call={"name": "testsrv__echo", "arguments": {"text": "hello"}})

    turn = ask(clock, 'call testsrv__echo {"text": "hello"}')

    assert turn.status == TurnStatus.COMPLETED
    assert offered(llm.requests[0]) == {"get_time"}
    result = turn.events.get(kind=EventKind.TOOL_RESULT).data
    assert (result["ok"], result["result"]) == (False, "Unknown tool: testsrv__echo")
    assert server_log.entries("echo") == []


def test_a_profile_listing_one_tool_of_a_server_gets_only_that_one(ask, llm):
    echo_only = Agent.objects.create(name="Echo", tools=["testsrv__echo"])

    turn = ask(echo_only, 'call testsrv__echo {"text": "hi"}')

    assert turn.status == TurnStatus.COMPLETED
    assert offered(llm.requests[0]) == {"testsrv__echo"}
    assert turn.events.get(kind=EventKind.TOOL_RESULT).data["result"] == "echo: hi"
