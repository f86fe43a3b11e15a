"""The approval path through a real ``manage.py qcluster`` worker process."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app import services as approval_services
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Turn
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

# Bounds how long a broken test waits (a worker process takes a few seconds to start).
WORKER_TIMEOUT = 90


def status_of(turn: Turn) -> str:
    return Turn.objects.values_list("status", flat=True).get(pk=turn.pk)


def ask_for_email(session, user) -> Turn:
    turn = lifecycle.turn_start(
        session=session, message="please send an email to x@example.com", actor=user
    )
    wait_for(lambda: status_of(turn) == TurnStatus.WAITING_FOR_APPROVAL, timeout=WORKER_TIMEOUT)
    return turn


def test_it_parks_resumes_and_sends_once_in_a_worker_process(llm, user, approver, worker_process):
    worker_process()
    session = sessions.session_create(owner=user)

    approved_turn = ask_for_email(session, user)
    approved = approved_turn.approval_requests.get()
    approval_services.approval_decide(approval_id=approved.pk, actor=approver, approve=True)
    wait_for(lambda: Turn.objects.get(pk=approved_turn.pk).is_terminal, timeout=WORKER_TIMEOUT)

    approved_turn.refresh_from_db()
    approved.refresh_from_db()
    assert approved_turn.status == TurnStatus.COMPLETED
    assert approved.executed_at is not None
    results = list(approved_turn.events.filter(kind=EventKind.TOOL_RESULT))
    assert [r.data["result"] for r in results] == ["Email sent to x@example.com."]
    assert approved_turn.events.filter(kind=EventKind.APPROVAL_DECIDED).count() == 1

    rejected_turn = ask_for_email(session, user)
    rejected = rejected_turn.approval_requests.get()
    approval_services.approval_decide(
        approval_id=rejected.pk, actor=approver, approve=False, reason="once is enough"
    )
    wait_for(lambda: Turn.objects.get(pk=rejected_turn.pk).is_terminal, timeout=WORKER_TIMEOUT)

    rejected_turn.refresh_from_db()
    rejected.refresh_from_db()
    assert rejected_turn.status == TurnStatus.COMPLETED
    assert rejected.executed_at is None
    result = rejected_turn.events.get(kind=EventKind.TOOL_RESULT)
    assert result.data["result"] == "Rejected by carol: once is enough"
    assert llm.requests[-1].body["messages"][-1]["content"] == "Rejected by carol: once is enough"
