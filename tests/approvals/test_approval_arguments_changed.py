"""An approval is bound to the arguments the approver saw."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app import services as approval_services
from sessions_app.models import Turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

REFUSED = "Refused: the arguments differ from the ones that were approved."


def test_it_refuses_arguments_changed_after_approval(
    email_waiting_for_approval, outbox, llm, approver, run_turn_in_thread
):
    turn, approval = email_waiting_for_approval()
    approval_services.approval_decide(approval_id=approval.pk, actor=approver, approve=True)

    # Someone rewrites the saved call between the approval and the resume.
    turn.refresh_from_db()
    checkpoint = turn.checkpoint
    checkpoint["awaiting_approval"][0]["arguments"]["to"] = "attacker@example.com"
    Turn.objects.filter(pk=turn.pk).update(checkpoint=checkpoint)

    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED

    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    assert outbox == []
    assert approval.executed_at is None
    assert approval.arguments["to"] == "x@example.com"
    result = turn.events.get(kind=EventKind.TOOL_RESULT)
    assert result.data["ok"] is False
    assert result.data["result"] == REFUSED
    told = llm.requests[-1].body["messages"][-1]
    assert told == {"role": "tool", "tool_call_id": approval.tool_call_id, "content": REFUSED}
