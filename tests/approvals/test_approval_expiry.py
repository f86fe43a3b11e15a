"""Approval requests that outlive ``expires_at`` stop their turn with ``approval_expired``."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from agentproj.vocabulary import EventKind, StopReason, TurnStatus
from approvals_app import errors as approval_errors
from approvals_app import services as approval_services
from approvals_app.models import ApprovalRequest, ApprovalStatus
from sessions_app import tasks
from sessions_app.core import lifecycle, sessions
from tests.turn_states import assert_error, interrupts

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def waiting(user, run_turn_in_thread):
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(
        session=session, message="please send an email to x@example.com", actor=user
    )
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.WAITING_FOR_APPROVAL
    turn.refresh_from_db()
    return turn, turn.approval_requests.get()


def make_overdue(approval: ApprovalRequest) -> None:
    ApprovalRequest.objects.filter(pk=approval.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def assert_expired(turn, approval) -> None:
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.EXPIRED
    assert approval.decided_by is None
    assert turn.status == TurnStatus.STOPPED
    assert turn.stop_reason == StopReason.APPROVAL_EXPIRED
    assert interrupts(turn) == 1
    notice = turn.events.get(kind=EventKind.INTERRUPT)
    assert notice.data["reason"] == StopReason.APPROVAL_EXPIRED


def test_it_expires_overdue_requests_in_the_scheduled_housekeeping(
    llm, user, approver, run_turn_in_thread
):
    turn, approval = waiting(user, run_turn_in_thread)
    make_overdue(approval)

    assert tasks.housekeeping() == "reaped 0, redelivered 0, expired 1, escalated 0"
    assert tasks.housekeeping() == "reaped 0, redelivered 0, expired 0, escalated 0"

    assert_expired(turn, approval)
    client = APIClient()
    client.force_authenticate(approver)
    assert_error(client.post(f"/api/approvals/{approval.pk}/approve/"), 409, "not_pending")
    assert run_turn_in_thread(turn.pk).join() == "skipped"
    assert_expired(turn, approval)
    assert not turn.events.filter(kind=EventKind.APPROVAL_DECIDED).exists()


def test_it_leaves_requests_that_are_not_due_yet(llm, user, run_turn_in_thread):
    turn, approval = waiting(user, run_turn_in_thread)

    assert approval_services.approvals_expire() == 0

    turn.refresh_from_db()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert interrupts(turn) == 0


def test_it_expires_requests_created_with_a_tiny_timeout(
    llm, user, approver, run_turn_in_thread, settings
):
    settings.APPROVAL_TIMEOUT = 0.001
    turn, approval = waiting(user, run_turn_in_thread)

    assert approval_services.approvals_expire() == 1

    assert_expired(turn, approval)
    with pytest.raises(approval_errors.NotPending):
        approval_services.approval_decide(approval_id=approval.pk, actor=approver, approve=True)
    assert_expired(turn, approval)


def test_it_expires_an_overdue_request_that_an_approver_tries_to_decide(
    llm, user, approver, run_turn_in_thread
):
    turn, approval = waiting(user, run_turn_in_thread)
    make_overdue(approval)

    with pytest.raises(approval_errors.NotPending):
        approval_services.approval_decide(approval_id=approval.pk, actor=approver, approve=True)

    assert_expired(turn, approval)


def test_the_queue_hides_an_overdue_request_and_leaves_it_to_the_housekeeping(
    llm, user, approver, run_turn_in_thread
):
    turn, approval = waiting(user, run_turn_in_thread)
    make_overdue(approval)
    client = Client()
    client.force_login(approver)

    response = client.get(
        reverse("admin:approvals_app_approvalrequest_changelist"), {"status__exact": "pending"}
    )

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
    # A read never writes: the request is still pending, its turn still waiting.
    approval.refresh_from_db()
    turn.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert tasks.housekeeping() == "reaped 0, redelivered 0, expired 1, escalated 0"
    assert_expired(turn, approval)
