"""Request -> wait -> decide -> resume, through the real agent loop and the scripted model."""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app import records as approval_records
from approvals_app import services as approval_services
from approvals_app.models import ApprovalStatus

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def kinds(turn) -> list[str]:
    return list(turn.events.order_by("seq").values_list("kind", flat=True))


def test_it_waits_for_approval_without_running_the_tool(email_waiting_for_approval, outbox, llm):
    turn, approval = email_waiting_for_approval()

    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert turn.lease_token is None
    assert approval.status == ApprovalStatus.PENDING
    assert approval.tool_name == "send_email"
    assert approval.arguments["to"] == "x@example.com"
    assert approval.arguments_hash == approval_records.arguments_hash(approval.arguments)
    assert approval.expires_at > approval.created_at
    requested = turn.events.get(kind=EventKind.APPROVAL_REQUESTED)
    assert requested.data["approval"] == approval.pk
    assert requested.data["arguments"] == approval.arguments
    assert not turn.events.filter(kind=EventKind.TOOL_RESULT).exists()
    assert outbox == []
    assert len(llm.requests) == 1


def test_it_sends_the_approved_email_once_and_completes(
    email_waiting_for_approval, outbox, llm, approver, run_turn_in_thread
):
    turn, approval = email_waiting_for_approval()

    approval_services.approval_decide(
        approval_id=approval.pk, actor=approver, approve=True, reason="fine"
    )
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED

    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    assert [m.to for m in outbox] == [["x@example.com"]]
    assert outbox[0].extra_headers["X-Idempotency-Key"] == (
        f"turn-{turn.pk}-{approval.tool_call_id}"
    )
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.executed_at is not None
    decided = turn.events.get(kind=EventKind.APPROVAL_DECIDED)
    assert decided.data == {
        "approval": approval.pk,
        "tool_call_id": approval.tool_call_id,
        "tool": "send_email",
        "decision": "approved",
        "status": "approved",
        "approvals_given": 1,
        "approvals_needed": 1,
        "decided_by": "carol",
        "reason": "fine",
    }
    result = turn.events.get(kind=EventKind.TOOL_RESULT)
    assert result.data["ok"] is True
    assert result.data["result"] == "Email sent to x@example.com."
    timeline = kinds(turn)
    assert timeline.index(EventKind.APPROVAL_REQUESTED) < timeline.index(EventKind.APPROVAL_DECIDED)
    assert timeline.index(EventKind.APPROVAL_DECIDED) < timeline.index(EventKind.TOOL_RESULT)
    assert llm.requests[-1].body["messages"][-1]["content"] == "Email sent to x@example.com."
    final = turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).order_by("seq").last()
    assert final.data["text"] == "Done. The tool reported: Email sent to x@example.com."


def test_it_tells_the_model_about_a_rejection_and_completes(
    email_waiting_for_approval, outbox, llm, approver, run_turn_in_thread
):
    turn, approval = email_waiting_for_approval()

    approval_services.approval_decide(
        approval_id=approval.pk, actor=approver, approve=False, reason="wrong recipient"
    )
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED

    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    assert outbox == []
    assert approval.status == ApprovalStatus.REJECTED
    assert approval.executed_at is None
    told = llm.requests[-1].body["messages"][-1]
    assert told["role"] == "tool"
    assert told["tool_call_id"] == approval.tool_call_id
    assert told["content"] == "Rejected by carol: wrong recipient"
    decided = turn.events.get(kind=EventKind.APPROVAL_DECIDED)
    assert decided.data["decision"] == "rejected"
    assert decided.data["decided_by"] == "carol"
    assert decided.data["reason"] == "wrong recipient"
    result = turn.events.get(kind=EventKind.TOOL_RESULT)
    assert result.data == {
        "tool_call_id": approval.tool_call_id,
        "tool": "send_email",
        "ok": False,
        "result": "Rejected by carol: wrong recipient",
        "not_run": "rejected",
    }
    assert not turn.events.filter(kind=EventKind.INTERRUPT).exists()
