"""The approver inbox (/approvals/): what it lists for whom, and its plain forms, which decide
through the same service as the API (JavaScript off: the test client runs none)."""

import json
import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from approvals_app.models import ApprovalRequest, ApprovalStatus, SessionGrant
from tests import turn_states
from tests.html_tree import parse

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

INBOX = reverse("approval-inbox")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def decide_url(approval: ApprovalRequest) -> str:
    return reverse("approval-inbox-decide", args=[approval.pk])


def listed(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'id="inbox-(\d+)"', response.content.decode())]


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def plain_approver(make_approver):
    """An approver who is not staff: the inbox is theirs, the admin is not."""
    person = make_approver("erin")
    assert not person.is_staff
    return person


def test_it_lists_what_an_approver_who_is_not_staff_may_decide(user, plain_approver):
    older = turn_states.waiting_turn(user)[1]
    newer = turn_states.waiting_turn(user)[1]

    response = logged_in(plain_approver).get(INBOX)

    assert response.status_code == 200
    assert listed(response) == [newer.pk, older.pk]
    text = " ".join(parse(response.content.decode()).visible_text.split())
    assert "Asked for by alice · agent" in text
    assert newer.turn.user_message in text
    assert "ops@example.com" in text
    assert reverse("session-detail", args=[newer.turn.session_id]) in response.content.decode()
    assert 'id="approvals-count">2<' in response.content.decode()


def test_the_form_decides_without_javascript(user, plain_approver):
    approval = turn_states.waiting_turn(user)[1]
    client = logged_in(plain_approver)

    response = client.post(
        decide_url(approval), {"decision": "approve", "reason": "fine"}, follow=True
    )

    assert response.redirect_chain == [(INBOX, 302)]
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.decided_by == plain_approver
    assert page_messages(response) == [f"You approved request {approval.pk} (send_email)."]
    assert listed(response) == []


def test_the_form_rejects_with_a_reason(user, plain_approver):
    approval = turn_states.waiting_turn(user)[1]

    logged_in(plain_approver).post(decide_url(approval), {"decision": "reject", "reason": "no"})

    approval.refresh_from_db()
    assert (approval.status, approval.reason) == (ApprovalStatus.REJECTED, "no")


def test_the_form_approves_edited_arguments_and_for_the_session(user, plain_approver):
    approval = turn_states.waiting_turn(user)[1]
    edited = {**approval.arguments, "subject": "Edited"}

    logged_in(plain_approver).post(
        decide_url(approval),
        {
            "decision": "approve",
            "arguments": json.dumps(edited),
            "grant": "1",
            "grant_match": ["to"],
        },
    )

    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.edited_arguments == edited
    grant = SessionGrant.objects.get(approval=approval)
    assert grant.match == {"to": "ops@example.com"}


def test_untouched_arguments_are_no_edit(user, plain_approver):
    approval = turn_states.waiting_turn(user)[1]

    logged_in(plain_approver).post(
        decide_url(approval),
        {"decision": "approve", "arguments": json.dumps(approval.arguments, indent=2)},
    )

    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.edited_arguments is None


def test_a_refusal_is_told_and_changes_nothing(user, plain_approver):
    approval = turn_states.waiting_turn(user)[1]
    client = logged_in(plain_approver)

    bad_json = client.post(
        decide_url(approval), {"decision": "approve", "arguments": "{not json"}, follow=True
    )
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert page_messages(bad_json) == [
        f"Request {approval.pk} (send_email): The arguments are not valid JSON."
    ]

    client.post(decide_url(approval), {"decision": "reject"}, follow=True)
    again = client.post(decide_url(approval), {"decision": "approve"}, follow=True)
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.REJECTED
    assert "already been decided" in page_messages(again)[0]


def test_a_quorum_shows_one_of_two_and_stays_listed(user, plain_approver, make_approver):
    approval = turn_states.waiting_turn(user, approvals_needed=2)[1]
    second = make_approver("frank")

    response = logged_in(plain_approver).post(
        decide_url(approval), {"decision": "approve"}, follow=True
    )

    assert page_messages(response) == [
        f"You approved request {approval.pk} (send_email); it waits for 1 more approval."
    ]
    text = parse(logged_in(second).get(INBOX).content.decode()).visible_text
    assert "Approved by erin (1 of 2)" in text
    assert "Waiting for 1 more approval" in text


def test_a_non_approver_sees_nothing_and_no_count(user, other_user):
    turn_states.waiting_turn(user)
    client = logged_in(other_user)

    assert client.get(INBOX).status_code == 403
    page = client.get(reverse("session-list")).content.decode()
    assert "approvals-link" not in page
    approval = ApprovalRequest.objects.get()
    assert client.post(decide_url(approval), {"decision": "approve"}).status_code == 403
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_the_header_counts_for_approvers_on_every_page(user, plain_approver):
    turn_states.waiting_turn(user)

    page = logged_in(plain_approver).get(reverse("session-list")).content.decode()

    assert f'href="{INBOX}" id="approvals-link"' in page
    assert 'id="approvals-count">1<' in page


def test_a_group_restricted_request_is_only_for_its_group(user, make_approver):
    ops = Group.objects.create(name="ops")
    member, outsider = make_approver("gina"), make_approver("hank")
    member.groups.add(ops)
    restricted = turn_states.waiting_turn(user, group=ops.pk)[1]
    open_to_all = turn_states.waiting_turn(user)[1]

    assert listed(logged_in(member).get(INBOX)) == [open_to_all.pk, restricted.pk]
    outsider_client = logged_in(outsider)
    assert listed(outsider_client.get(INBOX)) == [open_to_all.pk]
    refused = outsider_client.post(decide_url(restricted), {"decision": "approve"})
    assert refused.status_code == 404
    restricted.refresh_from_db()
    assert restricted.status == ApprovalStatus.PENDING


def test_the_inbox_asks_logged_out_visitors_to_log_in():
    response = Client().get(INBOX)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={INBOX}"
