"""A tool call whose arguments break the tool's schema is not run: the model is told why as the
tool's result and the turn goes on."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions
from tests.tools_for_tests import TEST_TOOL_PATHS, tool_log

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_it_reports_invalid_arguments_to_the_model_without_running_the_tool(
    llm, user, run_turn_in_thread, settings
):
    settings.AGENT_TOOLS = [*settings.AGENT_TOOLS, *TEST_TOOL_PATHS]
    tool_log.clear()
    llm.reply(tool_call={"name": "slow_tool", "arguments": {"labe": "typo"}})
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="run the slow tool", actor=user)

    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED

    turn.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    assert tool_log.of("typo") == []
    result = turn.events.get(kind=EventKind.TOOL_RESULT)
    assert result.data["ok"] is False
    assert result.data["result"].startswith("Invalid arguments for slow_tool")
    assert len(llm.requests) == 2
    second = llm.requests[1]
    told = [m for m in second.body["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in told] == [result.data["result"]]
    assert not turn.events.filter(kind=EventKind.ERROR).exists()
