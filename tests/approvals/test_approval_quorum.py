"""Four-eyes and quorum: who may approve, and how many distinct approvers release a call."""

from functools import partial

import pytest
from rest_framework.test import APIClient

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app import services as approval_services
from approvals_app.models import ApprovalStatus
from sessions_app.core import lifecycle
from tests.turn_states import assert_error, interrupts, race, waiting_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def client_for(person) -> APIClient:
    client = APIClient()
    client.force_authenticate(person)
    return client


def approve(person, approval, **body):
    return client_for(person).post(f"/api/approvals/{approval.pk}/approve/", body, format="json")


def queued_moves(turn) -> int:
    """How many times the turn's timeline says it was queued (started, resumed)."""
    return turn.events.filter(kind=EventKind.STATUS, data__status=TurnStatus.QUEUED).count()


def test_it_refuses_the_requesters_own_approval_where_four_eyes_apply(make_approver):
    requester = make_approver("dave")
    turn, approval = waiting_turn(requester, allow_self_approval=False)

    assert_error(approve(requester, approval), 409, "self_approval_forbidden")

    approval.refresh_from_db()
    turn.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING and approval.approvals_given == 0
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert not turn.events.filter(kind=EventKind.APPROVAL_DECIDED).exists()


def test_it_lets_the_requester_reject_their_own_request_under_four_eyes(make_approver):
    requester = make_approver("dave")
    _, approval = waiting_turn(requester, allow_self_approval=False)

    response = client_for(requester).post(f"/api/approvals/{approval.pk}/reject/")

    assert response.status_code == 200
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.REJECTED


def test_it_accepts_the_requesters_own_approval_by_default(make_approver):
    requester = make_approver("dave")
    turn, approval = waiting_turn(requester)

    response = approve(requester, approval)

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["approvals_needed"], body["approvals_given"]) == (
        "approved",
        1,
        1,
    )
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED


def test_it_keeps_a_quorum_of_two_pending_after_one_approval(user, make_approver):
    first = make_approver("erin")
    turn, approval = waiting_turn(user, approvals_needed=2)

    response = approve(first, approval)

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["approvals_needed"], body["approvals_given"]) == (
        "pending",
        2,
        1,
    )
    turn.refresh_from_db()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    decided = turn.events.get(kind=EventKind.APPROVAL_DECIDED)
    assert (decided.data["status"], decided.data["approvals_given"]) == ("pending", 1)
    listed = client_for(first).get("/api/approvals/?status=pending").json()["results"]
    assert [(a["id"], a["approvals_given"]) for a in listed] == [(approval.pk, 1)]


def test_it_counts_the_same_approver_twice_once(user, make_approver):
    first = make_approver("erin")
    turn, approval = waiting_turn(user, approvals_needed=2)

    approve(first, approval)
    response = approve(first, approval)

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["approvals_given"]) == ("pending", 1)
    turn.refresh_from_db()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert turn.events.filter(kind=EventKind.APPROVAL_DECIDED).count() == 1


def test_it_releases_the_call_at_the_second_distinct_approver(user, make_approver):
    first, second = make_approver("erin"), make_approver("frank")
    turn, approval = waiting_turn(user, approvals_needed=2)

    approve(first, approval)
    response = approve(second, approval)

    assert (response.json()["status"], response.json()["approvals_given"]) == ("approved", 2)
    approval.refresh_from_db()
    turn.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED and approval.decided_by == second
    assert turn.status == TurnStatus.QUEUED
    assert sorted(d.approver.username for d in approval.decisions.all()) == ["erin", "frank"]


def test_it_rejects_on_one_rejection_after_an_approval(user, make_approver):
    first, second = make_approver("erin"), make_approver("frank")
    turn, approval = waiting_turn(user, approvals_needed=2)

    approve(first, approval)
    response = client_for(second).post(
        f"/api/approvals/{approval.pk}/reject/", {"reason": "no"}, format="json"
    )

    assert response.json()["status"] == "rejected"
    approval.refresh_from_db()
    turn.refresh_from_db()
    assert approval.status == ApprovalStatus.REJECTED and approval.decided_by == second
    assert turn.status == TurnStatus.QUEUED
    assert_error(approve(make_approver("gina"), approval), 409, "not_pending")


def test_it_releases_the_turn_once_when_the_final_approvals_race(user, make_approver):
    for round_ in range(10):
        first, second = make_approver(f"erin{round_}"), make_approver(f"frank{round_}")
        turn, approval = waiting_turn(user, approvals_needed=2)
        queued_before = queued_moves(turn)

        outcomes = race(
            *(
                partial(
                    approval_services.approval_decide,
                    approval_id=approval.pk,
                    actor=person,
                    approve=True,
                )
                for person in (first, second)
            )
        )

        assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
        approval.refresh_from_db()
        turn.refresh_from_db()
        assert approval.status == ApprovalStatus.APPROVED and approval.approvals_given == 2
        assert turn.status == TurnStatus.QUEUED
        assert queued_moves(turn) == queued_before + 1


def test_it_stops_a_partly_approved_turn_once_on_cancel(user, make_approver):
    turn, approval = waiting_turn(user, approvals_needed=2)
    approve(make_approver("erin"), approval)

    outcome = lifecycle.turn_request_cancel(session=turn.session, actor=user)

    assert outcome.status == TurnStatus.STOPPED
    approval.refresh_from_db()
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED and interrupts(turn) == 1
    assert approval.status == ApprovalStatus.CANCELLED
    assert_error(approve(make_approver("frank"), approval), 409, "not_pending")
