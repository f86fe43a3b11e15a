"""Cancelling a turn that waits for approval stops it at once; the request can't be decided."""

import pytest
from django.core import mail
from rest_framework.test import APIClient

from agentproj.vocabulary import EventKind, StopReason, TurnStatus
from approvals_app.models import ApprovalStatus
from sessions_app.core import lifecycle, sessions
from tests.turn_states import assert_error, interrupts

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def approver_api(approver):
    client = APIClient()
    client.force_authenticate(approver)
    return client


def test_it_stops_a_waiting_turn_and_refuses_a_later_approval(
    llm, user, api, approver_api, run_turn_in_thread, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(
        session=session, message="please send an email to x@example.com", actor=user
    )
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.WAITING_FOR_APPROVAL
    approval = turn.approval_requests.get()

    cancel = api.post(f"/api/sessions/{session.pk}/cancel/", {"reason": "changed my mind"})

    assert cancel.status_code == 200
    assert cancel.json() == {"turn": turn.pk, "status": "stopped"}
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert turn.stop_reason == StopReason.USER_CANCEL
    assert turn.cancel_requested_by == user
    assert approval.status == ApprovalStatus.CANCELLED
    assert interrupts(turn) == 1

    approve = approver_api.post(f"/api/approvals/{approval.pk}/approve/", {"reason": "ok"})

    assert_error(approve, 409, "not_pending")
    approval.refresh_from_db()
    turn.refresh_from_db()
    assert approval.status == ApprovalStatus.CANCELLED
    assert approval.decided_by is None
    assert turn.status == TurnStatus.STOPPED
    assert not turn.events.filter(kind=EventKind.APPROVAL_DECIDED).exists()

    # Nothing was left to resume: a stray resume task does nothing.
    assert run_turn_in_thread(turn.pk).join() == "skipped"
    assert mail.outbox == []
    assert len(llm.requests) == 1


def test_it_answers_a_second_cancel_without_a_second_notice(llm, user, api, run_turn_in_thread):
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(
        session=session, message="please send an email to x@example.com", actor=user
    )
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.WAITING_FOR_APPROVAL

    first = api.post(f"/api/sessions/{session.pk}/cancel/")
    again_named = api.post(f"/api/sessions/{session.pk}/cancel/", {"turn": turn.pk})
    again_unnamed = api.post(f"/api/sessions/{session.pk}/cancel/")

    assert first.json() == {"turn": turn.pk, "status": "stopped"}
    assert again_named.status_code == 200
    assert again_named.json() == {"turn": turn.pk, "status": "stopped"}
    assert_error(again_unnamed, 409, "no_active_turn")
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert interrupts(turn) == 1
