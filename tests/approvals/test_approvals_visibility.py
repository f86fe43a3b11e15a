"""Who sees an approval request: one restricted to a group (a policy rule's) is listed and shown
only to the group's members and to superusers, in the API and in the admin; other approvers,
who may not decide it, do not read its arguments either. Lists come a page at a time, and
reading one never writes: an overdue request stays pending until the scheduled housekeeping
expires it."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from agentproj.vocabulary import TurnStatus
from approvals_app import services as approval_services
from approvals_app.models import ApprovalRequest, ApprovalStatus, SessionGrant
from sessions_app import tasks
from tests.turn_states import assert_error, waiting_turn

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:approvals_app_approvalrequest_changelist")
GRANTS = reverse("admin:approvals_app_sessiongrant_changelist")


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def admin_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_listed(user, query: str = "") -> list[int]:
    response = api_for(user).get(f"/api/approvals/{query}")
    assert response.status_code == 200
    return [approval["id"] for approval in response.json()["results"]]


def admin_listed(user) -> list[int]:
    response = admin_for(user).get(CHANGELIST)
    assert response.status_code == 200
    return [approval.pk for approval in response.context["cl"].result_list]


def change_url(approval: ApprovalRequest) -> str:
    return reverse("admin:approvals_app_approvalrequest_change", args=[approval.pk])


@pytest.fixture
def finance(django_user_model):
    """The group a policy rule names, with one approver in it (erin)."""
    group = Group.objects.create(name="finance")
    member = django_user_model.objects.create_user(
        "erin", password="erin-password-1", is_staff=True
    )
    member.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))
    member.groups.add(group)
    return group, member


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password="root-password-1")


@pytest.fixture
def requests(user, finance):
    """A request any approver may decide, and one only finance may."""
    group, _ = finance
    _, open_to_all = waiting_turn(user)
    _, finance_only = waiting_turn(user, group=group.pk)
    return open_to_all, finance_only


def test_the_api_lists_a_group_request_to_its_members_and_superusers_only(
    requests, finance, approver, superuser
):
    open_to_all, finance_only = requests
    _, member = finance

    assert api_listed(member) == [open_to_all.pk, finance_only.pk]
    assert api_listed(superuser) == [open_to_all.pk, finance_only.pk]
    assert api_listed(approver) == [open_to_all.pk]
    assert api_listed(approver, "?status=pending") == [open_to_all.pk]


def test_the_admin_queue_shows_a_group_request_to_its_members_and_superusers_only(
    requests, finance, approver, superuser
):
    open_to_all, finance_only = requests
    _, member = finance

    assert admin_listed(member) == [open_to_all.pk, finance_only.pk]
    assert admin_listed(superuser) == [open_to_all.pk, finance_only.pk]
    assert admin_listed(approver) == [open_to_all.pk]
    assert admin_for(member).get(change_url(finance_only)).status_code == 200
    assert admin_for(superuser).get(change_url(finance_only)).status_code == 200
    page = admin_for(approver).get(change_url(finance_only))
    assert page.status_code == 404
    assert "ops@example.com" not in page.content.decode()
    assert admin_for(approver).get(change_url(open_to_all)).status_code == 200


def test_the_admin_shows_a_group_requests_grant_to_its_members_only(requests, finance, approver):
    _, finance_only = requests
    _, member = finance
    approval_services.approval_decide(
        approval_id=finance_only.pk, actor=member, approve=True, grant=["to"]
    )
    grant = SessionGrant.objects.get(approval=finance_only)

    member_page = admin_for(member).get(GRANTS)
    other_page = admin_for(approver).get(GRANTS)

    assert [g.pk for g in member_page.context["cl"].result_list] == [grant.pk]
    assert list(other_page.context["cl"].result_list) == []


def test_the_api_lists_approvals_a_page_at_a_time(user, approver):
    approvals = [waiting_turn(user)[1].pk for _ in range(3)]
    client = api_for(approver)

    first = client.get("/api/approvals/?limit=2").json()
    assert (first["count"], [a["id"] for a in first["results"]]) == (3, approvals[:2])
    assert first["previous"] is None
    second = client.get(first["next"]).json()
    assert (second["count"], [a["id"] for a in second["results"]]) == (3, approvals[2:])
    assert second["next"] is None and second["previous"] is not None
    assert [a["id"] for a in client.get("/api/approvals/").json()["results"]] == approvals


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "limit=100000", "offset=-1"])
def test_the_api_refuses_a_page_it_cannot_give(query, user, approver):
    waiting_turn(user)

    body = assert_error(api_for(approver).get(f"/api/approvals/?{query}"), 400, "invalid")

    assert query.split("=")[0] in body["fields"]


def test_reading_an_overdue_request_leaves_it_to_the_housekeeping(user, approver):
    turn, approval = waiting_turn(user)
    ApprovalRequest.objects.filter(pk=approval.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert api_listed(approver) == []
    assert admin_listed(approver) == []
    page = admin_for(approver).get(change_url(approval))
    assert page.status_code == 200
    assert page.context["decidable"] is False

    approval.refresh_from_db()
    turn.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL

    assert tasks.housekeeping() == "reaped 0, redelivered 0, expired 1, escalated 0"
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.EXPIRED
    assert api_listed(approver, "?status=expired") == [approval.pk]
