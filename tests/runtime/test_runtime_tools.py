"""Stopping a turn while a tool runs: a non-interruptible tool finishes and its result is kept
before the turn stops; an interruptible one is cancelled and never completes."""

import pytest

from agentproj.vocabulary import EventKind, StopReason, TurnStatus
from sessions_app.core import lifecycle, sessions
from tests.conftest import wait_for
from tests.tools_for_tests import TEST_TOOL_PATHS, tool_log

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture(autouse=True)
def test_tools(settings):
    settings.AGENT_TOOLS = [*settings.AGENT_TOOLS, *TEST_TOOL_PATHS]
    tool_log.clear()
    yield
    tool_log.clear()


def _cancel_while_tool_runs(llm, user, run_turn_in_thread, tool_name: str, label: str):
    llm.reply(tool_call={"name": tool_name, "arguments": {"label": label}})
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="run the slow tool", actor=user)
    thread = run_turn_in_thread(turn.pk)
    wait_for(lambda: "started" in tool_log.of(label))
    lifecycle.turn_request_cancel(session=session, actor=user)
    assert thread.join() == TurnStatus.STOPPED
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert turn.stop_reason == StopReason.USER_CANCEL
    assert turn.events.filter(kind=EventKind.INTERRUPT).count() == 1
    assert not turn.events.filter(kind=EventKind.ERROR).exists()
    assert turn.events.filter(kind=EventKind.TOOL_CALL, data__tool=tool_name).count() == 1
    # The stop came before the model was asked about the tool's outcome.
    assert len(llm.requests) == 1
    return turn


def test_it_lets_a_non_interruptible_tool_finish_and_keeps_its_result(
    llm, user, run_turn_in_thread
):
    turn = _cancel_while_tool_runs(llm, user, run_turn_in_thread, "slow_tool", "email-like")
    assert tool_log.of("email-like") == ["started", "saw_stop", "finished"]
    result = turn.events.get(kind=EventKind.TOOL_RESULT)
    assert result.data["tool"] == "slow_tool"
    assert result.data["ok"] is True
    assert result.data["result"] == "slow_tool email-like finished"
    interrupt = turn.events.get(kind=EventKind.INTERRUPT)
    assert result.seq < interrupt.seq


def test_it_cancels_an_interruptible_tool(llm, user, run_turn_in_thread):
    turn = _cancel_while_tool_runs(
        llm, user, run_turn_in_thread, "slow_interruptible_tool", "lookup"
    )
    assert tool_log.of("lookup") == ["started", "cancelled"]
    assert not turn.events.filter(kind=EventKind.TOOL_RESULT).exists()
