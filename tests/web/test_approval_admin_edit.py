"""The admin change page approves with edited arguments and for the rest of the session, through
the same service as the API; what the service or the form refuses shows on the form."""

import html
import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from agentproj.vocabulary import EventKind
from approvals_app.models import ApprovalStatus, SessionGrant
from tests.turn_states import EMAIL_CALL, waiting_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

REQUESTED = EMAIL_CALL["arguments"]
EDITED = {"to": "y@example.com", "subject": "Report", "body": "Edited in the admin."}


@pytest.fixture
def approver_client(approver):
    client = Client()
    client.force_login(approver)
    return client


def change_url(approval) -> str:
    return reverse("admin:approvals_app_approvalrequest_change", args=[approval.pk])


def approve_url(approval) -> str:
    return reverse("admin:approvals_app_approvalrequest_approve", args=[approval.pk])


def form_errors(response) -> list[str]:
    return [str(e) for errors in response.context["approve_form"].errors.values() for e in errors]


def assert_still_pending(approval) -> None:
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert (approval.arguments, approval.edited_arguments) == (REQUESTED, None)
    assert not approval.decisions.exists()
    assert not SessionGrant.objects.exists()


def test_it_offers_the_arguments_to_edit_and_a_grant_per_field(user, approver_client):
    _, approval = waiting_turn(user)

    page = approver_client.get(change_url(approval)).content.decode()

    shown = json.dumps(REQUESTED, indent=2, sort_keys=True)
    assert re.search(r'<textarea name="arguments"[^>]*>\n' + re.escape(html.escape(shown)), page)
    assert 'name="grant"' in page
    for field in REQUESTED:
        assert f'name="grant_match" value="{field}"' in page


def test_it_approves_with_the_arguments_edited_on_the_form(user, approver, approver_client):
    turn, approval = waiting_turn(user)

    response = approver_client.post(
        approve_url(approval), {"arguments": json.dumps(EDITED), "reason": "right recipient"}
    )

    assert response.status_code == 302
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert (approval.arguments, approval.edited_arguments) == (REQUESTED, EDITED)
    assert approval.edited_by == approver
    decided = turn.events.get(kind=EventKind.APPROVAL_DECIDED).data
    assert (decided["edited_arguments"], decided["edited_by"]) == (EDITED, "carol")
    assert not SessionGrant.objects.exists()


def test_it_approves_unchanged_arguments_as_requested(user, approver_client):
    _, approval = waiting_turn(user)
    form = approver_client.get(change_url(approval)).context["approve_form"]

    approver_client.post(approve_url(approval), {"arguments": form["arguments"].value()})

    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert (approval.edited_arguments, approval.edited_by) == (None, None)


def test_it_shows_arguments_that_are_not_json_as_a_form_error(user, approver_client):
    _, approval = waiting_turn(user)

    response = approver_client.post(approve_url(approval), {"arguments": '{"to": "y@example'})

    assert response.status_code == 200
    assert form_errors(response) == ["Enter a valid JSON."]
    page = response.content.decode()
    assert html.escape('{"to": "y@example') in page
    assert 'action="' + approve_url(approval) + '"' in page
    assert_still_pending(approval)

    response = approver_client.post(approve_url(approval), {"arguments": '["y@example.com"]'})

    assert form_errors(response) == [
        "Give the arguments as a JSON object: names and values in braces."
    ]
    assert_still_pending(approval)


def test_it_shows_the_tools_refusal_of_the_arguments_as_a_form_error(user, approver_client):
    _, approval = waiting_turn(user)
    no_subject = {"to": "y@example.com", "body": "No subject."}

    response = approver_client.post(
        approve_url(approval), {"arguments": json.dumps(no_subject), "grant": "on"}
    )

    assert response.status_code == 200
    detail = "Invalid arguments for send_email: 'subject' is a required property"
    assert form_errors(response) == [detail]
    shown = response.content.decode()
    assert re.search(r'<ul class="errorlist"[^>]*><li>' + re.escape(html.escape(detail)), shown)
    assert any(detail in str(m) for m in response.context["messages"])
    assert_still_pending(approval)


def test_it_approves_for_the_session_matching_the_chosen_fields(user, approver, approver_client):
    turn, approval = waiting_turn(user)

    response = approver_client.post(
        approve_url(approval),
        {"arguments": json.dumps(EDITED), "grant": "on", "grant_match": ["to"]},
    )

    assert response.status_code == 302
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    grant = SessionGrant.objects.get()
    # The grant matches the arguments that were approved: the edited ones.
    assert (grant.session_id, grant.tool_name, grant.match, grant.granted_by) == (
        turn.session_id,
        "send_email",
        {"to": "y@example.com"},
        approver,
    )
    decided = turn.events.get(kind=EventKind.APPROVAL_DECIDED).data
    assert decided["grant"] == {"id": grant.pk, "match": {"to": "y@example.com"}}


def test_it_refuses_fields_to_match_without_a_grant(user, approver_client):
    _, approval = waiting_turn(user)

    response = approver_client.post(approve_url(approval), {"grant_match": ["to"]})

    assert response.status_code == 200
    assert form_errors(response) == ["Tick “Approve for this session” to approve later calls too."]
    assert_still_pending(approval)


def test_it_offers_no_grant_on_a_request_that_needs_two_approvers(user, approver_client):
    _, approval = waiting_turn(user, approvals_needed=2)

    page = approver_client.get(change_url(approval)).content.decode()
    approver_client.post(approve_url(approval), {"grant": "on"})

    assert 'name="arguments"' in page
    assert 'name="grant"' not in page
    assert 'name="grant_match"' not in page
    approval.refresh_from_db()
    assert (approval.status, approval.approvals_given) == (ApprovalStatus.PENDING, 1)
    assert not SessionGrant.objects.exists()


def test_the_change_page_puts_the_call_and_the_decision_before_the_read_only_fields(
    user, approver_client
):
    _, approval = waiting_turn(user)

    page = approver_client.get(change_url(approval)).content.decode()

    call = page.index('id="approval-call"')
    decide = page.index('id="approve-form"')
    reject = page.index('id="reject-form"')
    read_only = page.index('id="approvalrequest_form"')
    assert call < decide < reject < read_only
    shown = html.escape(json.dumps(REQUESTED, indent=2, sort_keys=True), quote=True)
    assert f'<pre class="approval-arguments">{shown}</pre>' in page[call:decide]
    # Nothing was edited: no diff.
    assert "approval-diff" not in page


def test_the_change_page_shows_an_edit_as_an_escaped_diff(user, approver_client):
    _, approval = waiting_turn(user)
    edited = {**REQUESTED, "body": "<script>alert(1)</script>"}
    approved = approver_client.post(approve_url(approval), {"arguments": json.dumps(edited)})
    assert approved.status_code == 302

    page = approver_client.get(change_url(approval)).content.decode()

    [diff] = re.findall(r'<pre class="approval-diff">(.*?)</pre>', page, re.S)
    lines = re.findall(r'<span class="diff-(\w+)">(.*?)</span>', diff)
    assert ("removed", "-   &quot;body&quot;: &quot;All good.&quot;,") in lines
    assert (
        "added",
        "+   &quot;body&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;,",
    ) in lines
    assert ("same", "    &quot;to&quot;: &quot;ops@example.com&quot;") in lines
    assert [kind for kind, _ in lines].count("same") == 4  # braces, subject, to
    assert "<script>alert(1)" not in page
    # The diff is shown after the decision too, when the form is gone.
    assert 'id="approve-form"' not in page
