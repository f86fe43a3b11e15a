"""A request still pending when its rule's ``escalate_after`` has passed is escalated once by
the housekeeping: the escalation group is told and may decide it too, the original group still
may, and the timeline says so."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from agentproj.vocabulary import EventKind
from approvals_app.models import ApprovalRequest, ApprovalStatus, Outcome, PolicyRule
from sessions_app import tasks
from tests.queued_tasks import run_queued_tasks
from tests.turn_states import assert_error, waiting_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

NOTIFY = "approvals_app.tasks.notify"


def approver_in(group, username, django_user_model):
    person = django_user_model.objects.create_user(
        username, password=f"{username}-pw-1", email=f"{username}@example.com"
    )
    person.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))
    person.groups.add(group)
    return person


def approve(person, approval):
    client = APIClient()
    client.force_authenticate(person)
    return client.post(f"/api/approvals/{approval.pk}/approve/", {}, format="json")


@pytest.fixture
def desks(django_user_model):
    first, second = Group.objects.create(name="mail desk"), Group.objects.create(name="managers")
    return {
        "first": first,
        "second": second,
        "fran": approver_in(first, "fran", django_user_model),
        "sam": approver_in(second, "sam", django_user_model),
    }


def escalating_turn(user, desks, **needs):
    return waiting_turn(
        user,
        group=desks["first"].pk,
        escalate_to=desks["second"].pk,
        escalate_after=3600.0,
        policy={"rule": None, "name": "Escalating mail", "outcome": "require_approval"},
        **needs,
    )


def make_due(approval):
    """The deadline as the housekeeping will find it an hour later."""
    ApprovalRequest.objects.filter(pk=approval.pk).update(
        escalate_at=timezone.now() - timedelta(seconds=1)
    )


def escalations(turn) -> int:
    return turn.events.filter(kind=EventKind.APPROVAL_ESCALATED).count()


def test_it_refuses_the_escalation_group_before_the_request_is_escalated(user, desks, outbox):
    turn, approval = escalating_turn(user, desks)

    tasks.housekeeping()

    assert_error(approve(desks["sam"], approval), 403, "not_eligible")
    approval.refresh_from_db()
    assert approval.escalated_at is None and approval.status == ApprovalStatus.PENDING
    assert escalations(turn) == 0


def test_it_escalates_once_tells_the_new_group_and_lets_it_decide(user, desks, outbox):
    turn, approval = escalating_turn(user, desks)
    run_queued_tasks(NOTIFY, approval.pk, "pending")
    assert [m.to for m in outbox] == [["fran@example.com"]]
    outbox.clear()
    make_due(approval)

    tasks.housekeeping()
    tasks.housekeeping()

    approval.refresh_from_db()
    assert approval.escalated_at is not None
    assert escalations(turn) == 1
    escalated = turn.events.get(kind=EventKind.APPROVAL_ESCALATED).data
    assert (escalated["approval"], escalated["escalated_to"]) == (approval.pk, "managers")
    run_queued_tasks(NOTIFY, approval.pk, "pending")
    assert [m.to for m in outbox] == [["sam@example.com"]]
    assert "escalated to you" in outbox[0].body

    response = approve(desks["sam"], approval)

    assert response.status_code == 200 and response.json()["status"] == "approved"
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED and approval.decided_by == desks["sam"]


def test_it_keeps_the_original_group_eligible_and_the_quorum_after_escalation(user, desks, outbox):
    _turn, approval = escalating_turn(user, desks, approvals_needed=2)
    make_due(approval)
    tasks.housekeeping()

    first = approve(desks["fran"], approval)
    second = approve(desks["sam"], approval)

    assert (first.json()["status"], first.json()["approvals_given"]) == ("pending", 1)
    assert (second.json()["status"], second.json()["approvals_given"]) == ("approved", 2)


def test_it_keeps_four_eyes_for_the_escalation_group(user, desks, outbox):
    user.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))
    user.groups.add(desks["second"])
    _turn, approval = escalating_turn(user, desks, allow_self_approval=False)
    make_due(approval)
    tasks.housekeeping()

    assert_error(approve(user, approval), 409, "self_approval_forbidden")


def test_it_shows_the_escalation_in_the_timeline(user, desks, outbox):
    turn, approval = escalating_turn(user, desks)
    make_due(approval)
    tasks.housekeeping()

    client = Client()
    client.force_login(user)
    page = client.get(f"/sessions/{turn.session_id}/").content.decode()

    assert "Escalated: the group managers may decide too" in page


@pytest.mark.parametrize(
    "fields",
    [
        {"escalate_after": timedelta(hours=1)},
        {"escalate_to": "second"},
        {"escalate_after": timedelta(hours=1), "escalate_to": "second", "outcome": Outcome.DENY},
    ],
)
def test_it_refuses_an_incomplete_or_misplaced_escalation_on_a_rule(desks, fields):
    values = {"outcome": Outcome.REQUIRE_APPROVAL, **fields}
    if values.get("escalate_to") == "second":
        values["escalate_to"] = desks["second"]
    rule = PolicyRule(name="r", tool_name="send_email", group=desks["first"], **values)

    with pytest.raises(ValidationError):
        rule.full_clean()
