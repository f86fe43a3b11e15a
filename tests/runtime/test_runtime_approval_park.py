"""A tool call that needs approval parks the turn and the task returns: no worker waits for the
human, nothing runs before the decision."""

import pytest
from django.core import mail

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalRequest, ApprovalStatus
from sessions_app.core import lifecycle, selectors, sessions

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_it_parks_the_turn_for_approval_and_frees_the_worker(llm, user, run_turn_in_thread):
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(
        session=session, message="please email bob@example.com about lunch", actor=user
    )

    assert run_turn_in_thread(turn.pk).join() == TurnStatus.WAITING_FOR_APPROVAL

    turn.refresh_from_db()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert turn.lease_token is None
    assert turn.worker_id == ""
    assert turn.finished_at is None
    assert selectors.session_status(selectors.session_active_turn(session)) == (
        "waiting_for_approval"
    )

    call = turn.events.get(kind=EventKind.TOOL_CALL)
    approval = ApprovalRequest.objects.get(turn=turn)
    assert approval.status == ApprovalStatus.PENDING
    assert approval.tool_name == "send_email"
    assert approval.tool_call_id == call.data["tool_call_id"]
    assert approval.arguments["to"] == "bob@example.com"
    requested = turn.events.get(kind=EventKind.APPROVAL_REQUESTED)
    assert requested.data["approval"] == approval.pk
    assert turn.checkpoint["awaiting_approval"][0]["id"] == approval.tool_call_id

    assert not turn.events.filter(kind=EventKind.TOOL_RESULT).exists()
    assert mail.outbox == []
    assert len(llm.requests) == 1
