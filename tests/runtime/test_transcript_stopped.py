"""The model knows which answers did not finish: after a stopped turn, the next one sends its
partial answer followed by a note that the user stopped it; after a failed turn, a note that it
failed. The notes are for the model only: the timeline has no event for them."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions
from tests.conftest import run_turn_to_end, wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_the_next_turn_sees_where_the_user_stopped_an_answer(llm, user, run_turn_in_thread):
    session = sessions.session_create(owner=user)
    stopped = lifecycle.turn_start(session=session, message="tell me a story", actor=user)
    thread = run_turn_in_thread(stopped.pk)
    wait_for(lambda: stopped.events.filter(kind=EventKind.ASSISTANT_MESSAGE).exists())
    lifecycle.turn_request_cancel(session=session, actor=user)
    assert thread.join() == TurnStatus.STOPPED
    partial = stopped.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"]
    assert partial

    after = lifecycle.turn_start(session=session, message="go on", actor=user)
    assert run_turn_to_end(after.pk) == TurnStatus.COMPLETED

    assert llm.requests[-1].body["messages"][1:] == [
        {"role": "user", "content": "tell me a story"},
        {"role": "assistant", "content": f"{partial}\n\n[The user stopped this answer here.]"},
        {"role": "user", "content": "go on"},
    ]
    assert not [event for event in session.events.all() if "stopped this" in str(event.data)]


def test_the_next_turn_sees_that_a_turn_failed(llm, user, settings):
    llm.fail(500, times=settings.LLM_MAX_RETRIES + 1)
    session = sessions.session_create(owner=user)
    failed = lifecycle.turn_start(session=session, message="hello", actor=user)
    assert run_turn_to_end(failed.pk) == TurnStatus.FAILED
    reason = failed.events.get(kind=EventKind.ERROR).data["text"]

    after = lifecycle.turn_start(session=session, message="try again", actor=user)
    assert run_turn_to_end(after.pk) == TurnStatus.COMPLETED

    assert llm.requests[-1].body["messages"][1:] == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": f"[This answer ends here: the turn failed. {reason}]"},
        {"role": "user", "content": "try again"},
    ]
