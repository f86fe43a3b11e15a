"""Stop keeps working when the worker's check of the turn row fails once."""

import pytest
from django.db import OperationalError

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import leases, lifecycle, sessions
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_it_still_stops_after_a_failed_heartbeat(
    llm, user, run_turn_in_thread, settings, monkeypatch
):
    settings.AGENT_HEARTBEAT_INTERVAL = 0.1
    settings.AGENT_CANCEL_POLL_INTERVAL = 0.05
    real_heartbeat = leases.turns_heartbeat
    heartbeats = []

    def heartbeat_that_fails_once(**kwargs):
        heartbeats.append(kwargs)
        if len(heartbeats) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_heartbeat(**kwargs)

    monkeypatch.setattr(leases, "turns_heartbeat", heartbeat_that_fails_once)
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="tell me a story", actor=user)
    thread = run_turn_in_thread(turn.pk)
    wait_for(lambda: len(heartbeats) >= 2)
    wait_for(lambda: turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).exists())

    lifecycle.turn_request_cancel(session=session, actor=user)

    assert thread.join() == TurnStatus.STOPPED
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert turn.events.filter(kind=EventKind.INTERRUPT).count() == 1
    story = llm.requests[0]
    # The server learns of the close at its next write.
    wait_for(lambda: story.closed_by_client_at is not None)
    assert story.finished_at is None
