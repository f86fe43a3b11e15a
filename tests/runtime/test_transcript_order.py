"""The history is the conversation in the order it happened: a turn sees the turns that had
ended when it started, in the order they ended, whatever order they were sent in."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions
from tests.conftest import run_turn_to_end, wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def users(request) -> list[str]:
    return [m["content"] for m in request.body["messages"] if m["role"] == "user"]


def test_a_turn_that_waited_in_line_sees_the_one_that_jumped_ahead(llm, user, run_turn_in_thread):
    session = sessions.session_create(owner=user)
    story = lifecycle.turn_start(session=session, message="tell me a story", actor=user)
    thread = run_turn_in_thread(story.pk)
    wait_for(lambda: story.events.filter(kind=EventKind.ASSISTANT_MESSAGE).exists())
    queued = lifecycle.turn_start(session=session, message="second", actor=user, on_busy="enqueue")
    jumped = lifecycle.turn_start(session=session, message="third", actor=user, on_busy="interrupt")
    assert thread.join() == TurnStatus.STOPPED

    assert run_turn_to_end(jumped.pk) == TurnStatus.COMPLETED
    assert users(llm.requests[-1]) == ["tell me a story", "third"]
    assert run_turn_to_end(queued.pk) == TurnStatus.COMPLETED
    assert users(llm.requests[-1]) == ["tell me a story", "third", "second"]
