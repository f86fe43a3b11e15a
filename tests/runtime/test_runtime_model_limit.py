"""A turn that keeps calling tools stops at ``AGENT_MAX_MODEL_CALLS`` model calls and fails with
``model_call_limit``."""

import pytest

from agentproj import vocabulary
from agentproj.vocabulary import ErrorCode, EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_it_fails_the_turn_at_the_model_call_limit(llm, user, run_turn_in_thread, settings):
    settings.AGENT_MAX_MODEL_CALLS = 2
    for _ in range(3):
        llm.reply(tool_call={"name": "get_time", "arguments": {"timezone": "UTC"}})
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(
        session=session, message="what time is it, again and again", actor=user
    )

    assert run_turn_in_thread(turn.pk).join() == TurnStatus.FAILED

    turn.refresh_from_db()
    assert turn.status == TurnStatus.FAILED
    assert turn.error_code == ErrorCode.MODEL_CALL_LIMIT
    assert len(llm.requests) == 2
    assert turn.events.filter(kind=EventKind.TOOL_RESULT, data__ok=True).count() == 2
    error = turn.events.get(kind=EventKind.ERROR)
    assert error.data["code"] == ErrorCode.MODEL_CALL_LIMIT
    assert error.data["text"] == vocabulary.USER_FACING_ERRORS[ErrorCode.MODEL_CALL_LIMIT]
    assert not turn.events.filter(kind=EventKind.INTERRUPT).exists()
