"""A resume task delivered twice runs the approved tool once."""

import pytest
from django.core import mail

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app import records as approval_records
from approvals_app import services as approval_services

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def approved_turn(email_waiting_for_approval, approver):
    turn, approval = email_waiting_for_approval()
    approval_services.approval_decide(approval_id=approval.pk, actor=approver, approve=True)
    return turn, approval


def test_it_sends_once_when_two_resumes_run_at_the_same_time(approved_turn, run_turn_in_thread):
    turn, approval = approved_turn

    first, second = run_turn_in_thread(turn.pk), run_turn_in_thread(turn.pk)
    outcomes = sorted([first.join(), second.join()])

    assert outcomes == sorted([TurnStatus.COMPLETED, "skipped"])
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    assert len(mail.outbox) == 1
    assert approval.executed_at is not None
    assert turn.events.filter(kind=EventKind.TOOL_RESULT).count() == 1


def test_it_sends_once_when_a_resume_arrives_after_the_turn_ended(
    approved_turn, run_turn_in_thread
):
    turn, approval = approved_turn

    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED
    assert run_turn_in_thread(turn.pk).join() == "skipped"

    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    assert len(mail.outbox) == 1
    assert approval.executed_at is not None
    assert turn.events.filter(kind=EventKind.TOOL_RESULT).count() == 1


def test_it_does_not_run_a_call_another_delivery_already_claimed(
    llm, approved_turn, run_turn_in_thread
):
    turn, approval = approved_turn
    # An earlier delivery claimed the call (and sent the email) but its worker died before it
    # could record the result; the turn is resumed from the checkpoint taken before the claim.
    assert approval_records.execution_claim(approval_id=approval.pk, requested=approval.arguments)

    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED

    turn.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    assert mail.outbox == []
    result = turn.events.get(kind=EventKind.TOOL_RESULT)
    assert result.data["ok"] is False
    assert result.data["result"] == "This approved call was already run once; it is not run again."
    assert llm.requests[-1].body["messages"][-1]["content"] == result.data["result"]
