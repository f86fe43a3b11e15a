"""GET /api/approvals/ and POST /api/approvals/<id>/approve/ and /reject/: approvers only."""

import pytest
from rest_framework.test import APIClient

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalStatus
from tests.turn_states import EMAIL_CALL, assert_error, assert_no_exception_text, waiting_turn

pytestmark = pytest.mark.django_db


@pytest.fixture
def approver_api(approver):
    client = APIClient()
    client.force_authenticate(approver)
    return client


def decide(client, approval, action, reason=None):
    body = {} if reason is None else {"reason": reason}
    return client.post(f"/api/approvals/{approval.pk}/{action}/", body, format="json")


def test_it_lists_pending_approvals_to_an_approver(approver_api, user):
    turn, approval = waiting_turn(user)
    _, decided = waiting_turn(user)
    decide(approver_api, decided, "reject")

    response = approver_api.get("/api/approvals/?status=pending")

    assert response.status_code == 200
    assert_no_exception_text(response)
    (body,) = response.json()["results"]
    assert body["id"] == approval.pk
    assert (body["turn"], body["session"], body["requested_by"]) == (
        turn.pk,
        str(turn.session_id),
        user.username,
    )
    assert (body["tool_call_id"], body["tool_name"], body["arguments"]) == (
        EMAIL_CALL["id"],
        EMAIL_CALL["name"],
        EMAIL_CALL["arguments"],
    )
    assert (body["status"], body["decided_by"]) == ("pending", None)
    everything = approver_api.get("/api/approvals/").json()["results"]
    assert {a["id"]: a["status"] for a in everything} == {
        approval.pk: "pending",
        decided.pk: "rejected",
    }


def test_it_refuses_the_list_without_the_permission(api, user):
    waiting_turn(user)
    assert_error(api.get("/api/approvals/"), 403, "permission_denied")


def test_it_approves_and_queues_the_turn(approver_api, approver, user):
    turn, approval = waiting_turn(user)
    response = decide(approver_api, approval, "approve", reason="fine")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["decided_by"], body["reason"]) == (
        approval.pk,
        "approved",
        approver.username,
        "fine",
    )
    approval.refresh_from_db()
    turn.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED and approval.decided_by == approver
    assert turn.status == TurnStatus.QUEUED
    decided = turn.events.get(kind=EventKind.APPROVAL_DECIDED)
    assert (decided.data["decision"], decided.data["decided_by"]) == ("approved", "carol")


def test_it_rejects_and_queues_the_turn(approver_api, user):
    turn, approval = waiting_turn(user)
    response = decide(approver_api, approval, "reject", reason="wrong recipient")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["reason"]) == (
        "rejected",
        "wrong recipient",
    )
    approval.refresh_from_db()
    turn.refresh_from_db()
    assert approval.status == ApprovalStatus.REJECTED
    assert turn.status == TurnStatus.QUEUED


@pytest.mark.parametrize("first", ["approve", "reject"])
@pytest.mark.parametrize("second", ["approve", "reject"])
def test_it_answers_409_for_a_decided_approval(first, second, approver_api, user):
    turn, approval = waiting_turn(user)
    assert decide(approver_api, approval, first).status_code == 200
    assert_error(decide(approver_api, approval, second), 409, "not_pending")
    approval.refresh_from_db()
    assert approval.status == (
        ApprovalStatus.APPROVED if first == "approve" else ApprovalStatus.REJECTED
    )
    assert turn.events.filter(kind=EventKind.APPROVAL_DECIDED).count() == 1


def test_it_answers_409_for_an_approval_of_a_stopped_turn(approver_api, user, api):
    turn, approval = waiting_turn(user)
    api.post(f"/api/sessions/{turn.session_id}/cancel/", {}, format="json")
    assert_error(decide(approver_api, approval, "approve"), 409, "not_pending")
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.CANCELLED


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_it_refuses_a_decision_without_the_permission(action, api, user):
    turn, approval = waiting_turn(user)
    assert_error(decide(api, approval, action), 403, "permission_denied")
    approval.refresh_from_db()
    turn.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL


def test_it_answers_404_for_an_unknown_approval(approver_api):
    response = approver_api.post("/api/approvals/999999/approve/", {}, format="json")
    assert_error(response, 404, "not_found")


def test_it_refuses_an_oversized_reason(approver_api, user):
    _, approval = waiting_turn(user)
    assert_error(decide(approver_api, approval, "reject", reason="x" * 2001), 400, "invalid")
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


@pytest.mark.parametrize("status", ["AAA", "PENDING", ""])
def test_it_refuses_an_unknown_status_filter(status, approver_api, user):
    waiting_turn(user)
    body = assert_error(approver_api.get(f"/api/approvals/?status={status}"), 400, "invalid")
    assert "status" in body["fields"]


def test_it_shows_who_decided_or_null(approver_api, user):
    _, pending = waiting_turn(user)
    _, decided = waiting_turn(user)
    decide(approver_api, decided, "approve")

    listed = {
        a["id"]: a["decided_by"] for a in approver_api.get("/api/approvals/").json()["results"]
    }

    assert listed == {pending.pk: None, decided.pk: "carol"}
