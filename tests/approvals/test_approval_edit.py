"""Approve with edited arguments: checked against the tool's schema, run exactly as edited."""

import json

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app import records as approval_records
from approvals_app.models import ApprovalStatus
from tests.turn_states import EMAIL_CALL, assert_error, waiting_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

EDITED = {"to": "y@example.com", "subject": "Hello", "body": "Edited by a person."}


def client_for(person) -> APIClient:
    client = APIClient()
    client.force_authenticate(person)
    return client


def approve(person, approval, **body):
    return client_for(person).post(f"/api/approvals/{approval.pk}/approve/", body, format="json")


def test_it_runs_the_call_once_with_exactly_the_edited_arguments(
    email_waiting_for_approval, outbox, llm, approver, run_turn_in_thread
):
    turn, approval = email_waiting_for_approval()
    original = dict(approval.arguments)

    response = approve(approver, approval, arguments=EDITED)

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["arguments"], body["edited_arguments"], body["edited_by"]) == (
        "approved",
        original,
        EDITED,
        "carol",
    )
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED
    assert [(m.to, m.subject, m.body) for m in outbox] == [
        (["y@example.com"], "Hello", "Edited by a person.")
    ]
    approval.refresh_from_db()
    assert approval.executed_at is not None
    assert approval.arguments_hash == approval_records.arguments_hash(EDITED)
    # The timeline keeps both versions and who changed them.
    requested = turn.events.get(kind=EventKind.APPROVAL_REQUESTED)
    decided = turn.events.get(kind=EventKind.APPROVAL_DECIDED)
    assert requested.data["arguments"] == original
    assert (decided.data["edited_arguments"], decided.data["edited_by"]) == (EDITED, "carol")
    # The model is told a person changed the call; the page shows the tool's result alone
    # (the note is kept apart, for the model and the transcript of later turns).
    result = turn.events.get(kind=EventKind.TOOL_RESULT)
    told = llm.requests[-1].body["messages"][-1]
    note = (
        "Note: a person (carol) changed the arguments of this call before approving it; "
        f"it ran with {json.dumps(EDITED, sort_keys=True)}.\n"
    )
    assert told["content"] == note + "Email sent to y@example.com."
    assert result.data["ok"] is True
    assert (result.data["note"], result.data["result"]) == (note, "Email sent to y@example.com.")


def test_it_refuses_edited_arguments_the_schema_refuses_and_keeps_waiting(user, approver):
    turn, approval = waiting_turn(user)

    body = assert_error(
        approve(approver, approval, arguments={"to": "y@example.com"}), 400, "invalid_arguments"
    )

    assert "subject" in body["detail"]
    approval.refresh_from_db()
    turn.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert (approval.edited_arguments, approval.arguments) == (None, EMAIL_CALL["arguments"])
    assert not approval.decisions.exists()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert not turn.events.filter(kind=EventKind.APPROVAL_DECIDED).exists()


def test_it_refuses_arguments_that_are_not_an_object(user, approver):
    _, approval = waiting_turn(user)
    assert_error(approve(approver, approval, arguments=["y@example.com"]), 400, "invalid")
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_it_does_not_count_approvals_of_the_arguments_before_an_edit(
    user, approver, django_user_model
):
    second = django_user_model.objects.create_user("erin", password="erin-pw-1")
    second.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))
    turn, approval = waiting_turn(user, approvals_needed=2)

    approve(approver, approval)
    edited = approve(second, approval, arguments=EDITED).json()
    assert (edited["status"], edited["approvals_given"]) == ("pending", 1)

    again = approve(approver, approval).json()

    assert (again["status"], again["approvals_given"]) == ("approved", 2)
    approval.refresh_from_db()
    assert approval.arguments_to_run == EDITED
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED
