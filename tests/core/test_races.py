"""Concurrent requests on one session, in real concurrent transactions (threads released by a
barrier; PostgreSQL serializes them on the session row lock, SQLite on its IMMEDIATE write
lock)."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app import errors as approval_errors
from approvals_app import services as approval_services
from approvals_app.models import ApprovalStatus
from sessions_app.core import errors, leases, lifecycle
from sessions_app.models import Turn
from tests.turn_states import interrupts, new_session, race, waiting_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

ROUNDS = 5


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_it_lets_exactly_one_of_two_racing_messages_start_a_turn(round_, user):
    session = new_session(user)

    def send(text):
        return lambda: lifecycle.turn_start(session=session, message=text, actor=user)

    outcomes = race(send("first"), send("second"))

    won = [value for kind, value in outcomes if kind == "ok"]
    lost = [value for kind, value in outcomes if kind == "error"]
    assert len(won) == 1, outcomes
    assert len(lost) == 1 and isinstance(lost[0], errors.SessionBusy), outcomes
    turns = list(Turn.objects.filter(session=session))
    assert [t.pk for t in turns] == [won[0].pk]
    assert turns[0].status == TurnStatus.QUEUED
    assert session.events.filter(kind=EventKind.USER_MESSAGE).count() == 1


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_it_lets_exactly_one_of_cancel_and_approve_win(round_, user, approver):
    turn, approval = waiting_turn(user)

    def cancel():
        return lifecycle.turn_request_cancel(session=turn.session, actor=user)

    def approve():
        return approval_services.approval_decide(
            approval_id=approval.pk, actor=approver, approve=True
        )

    (cancel_kind, cancel_value), (approve_kind, approve_value) = race(cancel, approve)

    # The cancel never fails: it either stops the waiting turn or follows the queued row.
    assert cancel_kind == "ok", cancel_value
    assert cancel_value.status == TurnStatus.STOPPED
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert interrupts(turn) == 1
    statuses = [e.data["status"] for e in turn.events.filter(kind=EventKind.STATUS).order_by("seq")]
    if approve_kind == "error":
        # The cancel won: the approval is withdrawn and the approver is told it is not pending.
        assert isinstance(approve_value, approval_errors.NotPending), approve_value
        assert approval.status == ApprovalStatus.CANCELLED
        assert not turn.events.filter(kind=EventKind.APPROVAL_DECIDED).exists()
        assert statuses[-2:] == [TurnStatus.WAITING_FOR_APPROVAL, TurnStatus.STOPPED]
    else:
        # The approval won: the turn was queued to resume, then the cancel stopped it at once.
        assert approval.status == ApprovalStatus.APPROVED
        assert turn.events.filter(kind=EventKind.APPROVAL_DECIDED).count() == 1
        assert statuses[-3:] == [
            TurnStatus.WAITING_FOR_APPROVAL,
            TurnStatus.QUEUED,
            TurnStatus.STOPPED,
        ]


def test_it_refuses_an_approval_after_the_cancel_won(user, approver):
    turn, approval = waiting_turn(user)
    lifecycle.turn_request_cancel(session=turn.session, actor=user)
    with pytest.raises(approval_errors.NotPending):
        approval_services.approval_decide(approval_id=approval.pk, actor=approver, approve=True)
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert (turn.status, approval.status) == (TurnStatus.STOPPED, ApprovalStatus.CANCELLED)
    assert interrupts(turn) == 1


def test_it_stops_the_queued_turn_when_the_approval_won(user, approver):
    turn, approval = waiting_turn(user)
    approval_services.approval_decide(approval_id=approval.pk, actor=approver, approve=True)
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED
    outcome = lifecycle.turn_request_cancel(session=turn.session, actor=user)
    assert outcome.status == TurnStatus.STOPPED
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert (turn.status, approval.status) == (TurnStatus.STOPPED, ApprovalStatus.APPROVED)
    assert interrupts(turn) == 1
    # A resume task delivered after the stop finds nothing to run.
    assert leases.turn_take_lease(turn_id=turn.pk, worker_id="late") is None
