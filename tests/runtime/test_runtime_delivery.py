"""A task delivered twice for one turn runs the turn once: the second delivery finds the lease
taken (or the turn finished) and skips."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import lifecycle, sessions

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_it_runs_a_turn_delivered_twice_once(llm, user, run_turn_in_thread):
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="hello", actor=user)

    first = run_turn_in_thread(turn.pk)
    second = run_turn_in_thread(turn.pk)

    assert sorted([first.join(), second.join()]) == sorted([TurnStatus.COMPLETED, "skipped"])
    turn.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    assert turn.attempts == 1
    assert len(llm.requests) == 1
    assert turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).count() == 1
    assert turn.events.filter(kind=EventKind.STATUS, data__status=TurnStatus.RUNNING).count() == 1


def test_it_skips_a_delivery_that_arrives_after_the_turn_ended(llm, user, run_turn_in_thread):
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="hello", actor=user)
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED
    finished_at = type(turn).objects.get(pk=turn.pk).finished_at

    assert run_turn_in_thread(turn.pk).join() == "skipped"

    turn.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    assert turn.finished_at == finished_at
    assert len(llm.requests) == 1
    assert turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).count() == 1
