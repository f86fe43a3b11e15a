"""Housekeeping: turns whose worker died resume a bounded number of times, and a queued turn
whose delivery was lost is handed to the broker again."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.brokers import get_broker

from agentproj.vocabulary import TurnStatus
from approvals_app import services as approvals
from sessions_app import tasks
from sessions_app.core import housekeeping, leases, lifecycle, sessions
from sessions_app.models import Turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def park_and_approve(turn: Turn, approver, call_id: str) -> None:
    lease = leases.turn_take_lease(turn_id=turn.pk, worker_id="worker")
    lifecycle.turn_park_for_approval(
        turn_id=turn.pk,
        lease_token=lease,
        checkpoint={"messages": [{"role": "user", "content": turn.user_message}], "model_calls": 1},
        calls=[
            {
                "id": call_id,
                "name": "send_email",
                "arguments": {"to": "ann@example.com", "subject": "s", "body": "b"},
            }
        ],
    )
    approval = turn.approval_requests.get(tool_call_id=call_id)
    approvals.approval_decide(approval_id=approval.pk, actor=approver, approve=True)


def test_it_resumes_a_turn_after_approvals_when_its_worker_dies(user, approver, settings):
    settings.AGENT_MAX_ATTEMPTS = 1
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="email twice", actor=user)
    park_and_approve(turn, approver, "call_1")
    park_and_approve(turn, approver, "call_2")
    leases.turn_take_lease(turn_id=turn.pk, worker_id="worker")
    stale = timezone.now() - timedelta(seconds=settings.AGENT_LEASE_TIMEOUT + 5)
    Turn.objects.filter(pk=turn.pk).update(heartbeat_at=stale)

    housekeeping.turns_reap_expired()

    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED
    assert turn.worker_losses == 1
    assert turn.error_code == ""


def test_it_hands_a_lost_delivery_over_again(user, settings):
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="hello", actor=user)
    broker = get_broker()
    queued_before = broker.queue_size()
    long_ago = timezone.now() - timedelta(seconds=settings.AGENT_REDELIVER_AFTER + 5)
    Turn.objects.filter(pk=turn.pk).update(enqueued_at=long_ago)

    assert tasks.housekeeping() == "reaped 0, redelivered 1, expired 0, escalated 0"

    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED
    assert turn.enqueued_at > long_ago
    assert broker.queue_size() == queued_before + 1
    assert tasks.housekeeping() == "reaped 0, redelivered 0, expired 0, escalated 0"


def test_it_leaves_a_recently_queued_turn_alone(user):
    session = sessions.session_create(owner=user)
    lifecycle.turn_start(session=session, message="hello", actor=user)

    assert housekeeping.turns_redeliver() == 0
