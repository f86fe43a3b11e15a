"""Decision links in approval e-mails: a GET only shows, the addressed approver's POST decides
once, and every other use is refused with nothing changed."""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from approvals_app import links, services
from approvals_app.models import ApprovalDecision, ApprovalRequest, ApprovalStatus
from tests import turn_states

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def path_of(approval: ApprovalRequest, approver) -> str:
    """The link's path and query, as the e-mail holds it after SITE_URL."""
    url = urlsplit(links.link_for(approval, approver.pk))
    return f"{url.path}?{url.query}"


def unchanged(approval: ApprovalRequest) -> bool:
    approval.refresh_from_db()
    return approval.status == ApprovalStatus.PENDING and not approval.decisions.exists()


@pytest.fixture
def pending(user):
    return turn_states.waiting_turn(user)[1]


@pytest.fixture
def erin(make_approver):
    return make_approver("erin")


def test_a_get_shows_the_call_and_decides_nothing(pending, erin):
    response = logged_in(erin).get(path_of(pending, erin))

    assert response.status_code == 200
    page = response.content.decode()
    assert "ops@example.com" in page
    assert 'value="approve"' in page and 'value="reject"' in page
    assert unchanged(pending)


def test_the_addressed_approver_decides_once(pending, erin):
    client = logged_in(erin)
    link = path_of(pending, erin)

    response = client.post(link, {"decision": "approve", "reason": "looks right"})

    assert response.status_code == 302
    assert response["Location"] == link
    pending.refresh_from_db()
    assert (pending.status, pending.decided_by, pending.reason) == (
        ApprovalStatus.APPROVED,
        erin,
        "looks right",
    )
    after = client.get(link)
    assert after.status_code == 200
    assert "It was approved by erin: looks right" in after.content.decode()
    assert 'value="approve"' not in after.content.decode()
    reused = client.post(link, {"decision": "reject"})
    assert reused.status_code == 409
    pending.refresh_from_db()
    assert pending.status == ApprovalStatus.APPROVED
    assert ApprovalDecision.objects.count() == 1


def test_a_link_is_spent_once_its_approver_decided_under_a_quorum(user, make_approver):
    approval = turn_states.waiting_turn(user, approvals_needed=2)[1]
    erin = make_approver("erin")
    client = logged_in(erin)
    link = path_of(approval, erin)
    client.post(link, {"decision": "approve"})

    again = client.get(link)
    reused = client.post(link, {"decision": "reject"})

    assert again.status_code == 200
    assert "a decision link is used once" in again.content.decode()
    assert 'value="reject"' not in again.content.decode()
    assert reused.status_code == 409
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert list(approval.decisions.values_list("decision", flat=True)) == ["approve"]


def test_another_user_is_refused(pending, erin, make_approver):
    frank = make_approver("frank")
    client = logged_in(frank)
    link = path_of(pending, erin)

    assert client.get(link).status_code == 403
    assert client.post(link, {"decision": "approve"}).status_code == 403
    assert unchanged(pending)


def test_a_logged_out_visitor_logs_in_and_comes_back(pending, erin):
    link = path_of(pending, erin)

    response = Client().get(link)

    assert response.status_code == 302
    login = urlsplit(response["Location"])
    assert login.path == reverse("login")
    client = Client()
    back = client.post(
        response["Location"], {"username": "erin", "password": "erin-pw-1"}, follow=False
    )
    assert back.status_code == 302
    assert back["Location"] == link
    assert client.get(link).status_code == 200
    assert Client().post(link, {"decision": "approve"}).status_code == 302
    assert unchanged(pending)


def test_a_tampered_link_is_refused(pending, erin):
    client = logged_in(erin)
    token = links.token_for(pending, erin.pk)
    base = reverse("approval-link", args=[pending.pk])
    forged = signing.dumps(
        {"u": erin.pk, "r": pending.pk, "h": pending.arguments_hash}, salt="another salt"
    )
    other_request = turn_states.waiting_turn(pending.turn.session.owner)[1]

    for bad in (
        f"{base}?t={token[:-2]}xx",
        f"{base}?t={forged}",
        base,
        reverse("approval-link", args=[other_request.pk]) + f"?t={token}",
    ):
        assert client.get(bad).status_code == 403, bad
        assert client.post(bad, {"decision": "approve"}).status_code == 403, bad
    assert unchanged(pending)
    assert unchanged(other_request)


def test_an_expired_request_is_refused(pending, erin):
    ApprovalRequest.objects.filter(pk=pending.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    client = logged_in(erin)
    link = path_of(pending, erin)

    shown = client.get(link)
    posted = client.post(link, {"decision": "approve"})

    assert shown.status_code == 200
    assert "It expired without a decision." in shown.content.decode()
    assert 'value="approve"' not in shown.content.decode()
    assert posted.status_code == 409
    assert unchanged(pending)


def test_a_request_decided_elsewhere_shows_how_it_ended(pending, erin, make_approver):
    link = path_of(pending, erin)
    services.approval_decide(
        approval_id=pending.pk, actor=make_approver("frank"), approve=False, reason="no"
    )
    client = logged_in(erin)

    shown = client.get(link)
    posted = client.post(link, {"decision": "approve"})

    assert shown.status_code == 200
    assert "It was rejected by frank: no" in shown.content.decode()
    assert posted.status_code == 409
    pending.refresh_from_db()
    assert pending.status == ApprovalStatus.REJECTED


def test_an_edit_kills_the_links_sent_before_it(pending, erin, make_approver):
    link = path_of(pending, erin)
    pending = ApprovalRequest.objects.get(pk=pending.pk)
    # A second approver edits under a quorum of one more: still pending, other arguments.
    ApprovalRequest.objects.filter(pk=pending.pk).update(approvals_needed=2)
    services.approval_decide(
        approval_id=pending.pk,
        actor=make_approver("frank"),
        approve=True,
        arguments={**pending.arguments, "subject": "Changed"},
    )
    client = logged_in(erin)

    assert client.get(link).status_code == 403
    assert client.post(link, {"decision": "approve"}).status_code == 403
    pending.refresh_from_db()
    assert pending.status == ApprovalStatus.PENDING
    assert list(pending.decisions.values_list("approver__username", flat=True)) == ["frank"]
