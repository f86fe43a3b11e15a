"""Stopping a turn stops the sub-agent running below it: both end stopped, one notice each."""

import time

import pytest

from agentproj.vocabulary import EventKind, StopReason, TurnStatus
from sessions_app import demo_model
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Turn
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

STORY = demo_model.story_text()


def _child_streaming(parent) -> Turn | None:
    child = Turn.objects.filter(parent=parent).first()
    if child is None:
        return None
    texts = child.events.filter(kind=EventKind.ASSISTANT_MESSAGE).values_list("data", flat=True)
    return child if any(data.get("text") for data in texts) else None


def test_it_stops_a_parent_and_its_streaming_sub_agent(llm, user, run_turn_in_thread):
    session = sessions.session_create(owner=user)
    parent = lifecycle.turn_start(session=session, message="delegate tell me a story", actor=user)
    thread = run_turn_in_thread(parent.pk)
    child = wait_for(lambda: _child_streaming(parent))
    cancelled_at = time.monotonic()

    lifecycle.turn_request_cancel(session=session, actor=user)

    assert thread.join() == TurnStatus.STOPPED
    parent.refresh_from_db()
    child.refresh_from_db()
    assert child.user_message == "tell me a story"
    assert parent.status == TurnStatus.STOPPED
    assert parent.stop_reason == StopReason.USER_CANCEL
    assert child.status == TurnStatus.STOPPED
    assert child.stop_reason == StopReason.PARENT_STOPPED
    for turn in (parent, child):
        assert turn.events.filter(kind=EventKind.INTERRUPT).count() == 1
        assert turn.lease_token is None
    assert not session.events.filter(kind=EventKind.ERROR).exists()
    assert Turn.objects.filter(session=session).count() == 2

    kept = child.events.get(kind=EventKind.ASSISTANT_MESSAGE).data
    assert kept["streaming"] is False
    assert kept["text"] and STORY.startswith(kept["text"]) and kept["text"] != STORY

    # The parent's call and the child's story; the child's stream closed by us, nothing after.
    wait_for(lambda: llm.requests[1].closed_by_client_at)
    assert len(llm.requests) == 2
    story = llm.requests[1]
    assert story.body["messages"][-1] == {"role": "user", "content": "tell me a story"}
    assert story.finished_at is None
    assert story.started_at < cancelled_at < story.closed_by_client_at
