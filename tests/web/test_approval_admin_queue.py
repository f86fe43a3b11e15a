"""The admin approval queue, through the Django test client against the real admin."""

import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app import services as approval_services
from approvals_app.models import ApprovalRequest, ApprovalStatus
from sessions_app.core import lifecycle
from tests import turn_states
from tests.turn_states import waiting_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

CHANGELIST = reverse("admin:approvals_app_approvalrequest_changelist")


def parked(owner, *, tool: str = "send_email", arguments: dict | None = None) -> ApprovalRequest:
    """A turn parked on one call to ``tool``, through the same services a worker uses."""
    turn, lease = turn_states.running_turn(owner)
    arguments = arguments or {"to": "x@example.com", "subject": "Hi", "body": "Hello there"}
    assert lifecycle.turn_park_for_approval(
        turn_id=turn.pk,
        lease_token=lease,
        checkpoint={"messages": [{"role": "user", "content": turn.user_message}]},
        calls=[{"id": f"call_{tool}", "name": tool, "arguments": arguments}],
    )
    return turn.approval_requests.get()


def change_url(approval: ApprovalRequest) -> str:
    return reverse("admin:approvals_app_approvalrequest_change", args=[approval.pk])


def button_url(approval: ApprovalRequest, decision: str) -> str:
    return reverse(f"admin:approvals_app_approvalrequest_{decision}", args=[approval.pk])


def listed(response) -> list[int]:
    return [approval.pk for approval in response.context["cl"].result_list]


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def approver_client(approver):
    client = Client()
    client.force_login(approver)
    return client


@pytest.fixture
def viewer_client(django_user_model):
    viewer = django_user_model.objects.create_user(
        "dave", password="dave-password-1", is_staff=True
    )
    viewer.user_permissions.add(Permission.objects.get(codename="view_approvalrequest"))
    client = Client()
    client.force_login(viewer)
    return client


def assert_decided(approval: ApprovalRequest, status: str, *, by: str, reason: str = "") -> None:
    approval.refresh_from_db()
    assert approval.status == status
    assert approval.decided_by.get_username() == by
    assert approval.reason == reason
    approval.turn.refresh_from_db()
    assert approval.turn.status == TurnStatus.QUEUED
    decided = approval.turn.events.get(kind=EventKind.APPROVAL_DECIDED)
    assert decided.data["approval"] == approval.pk
    assert decided.data["decision"] == status
    assert decided.data["decided_by"] == by
    assert decided.data["reason"] == reason


def test_it_lists_pending_requests_first_then_oldest_first(user, approver, approver_client):
    oldest = parked(user)
    decided = parked(user)
    newest = parked(user)
    approval_services.approval_decide(
        approval_id=decided.pk, actor=approver, approve=False, reason="no"
    )

    response = approver_client.get(CHANGELIST, {"status__exact": "all"})

    assert response.status_code == 200
    assert listed(response) == [oldest.pk, newest.pk, decided.pk]


def test_it_lists_only_pending_requests_by_default_and_all_on_request(
    user, approver, approver_client
):
    pending = parked(user)
    rejected = parked(user)
    approval_services.approval_decide(
        approval_id=rejected.pk, actor=approver, approve=False, reason="no"
    )

    default = approver_client.get(CHANGELIST)
    everything = approver_client.get(CHANGELIST, {"status__exact": "all"})

    assert listed(default) == [pending.pk]
    assert listed(everything) == [pending.pk, rejected.pk]
    # "All" is one of the filter's choices, and the default one is marked as chosen.
    html = default.content.decode()
    assert 'href="?status__exact=all"' in html
    assert re.search(r'<li class="selected">\s*<a href="\?status__exact=pending"', html)


def test_it_shows_session_requester_tool_summary_age_and_expiry(user, approver_client):
    approval = parked(user, arguments={"to": "x@example.com", "subject": "Hi", "body": "Hello"})

    html = approver_client.get(CHANGELIST).content.decode()

    rows = re.findall(r"<tr[^>]*>.*?</tr>", html, re.S)
    [row] = [r for r in rows if f'name="_selected_action" value="{approval.pk}"' in r]
    session = approval.turn.session
    assert f'href="{reverse("session-detail", args=[session.pk])}"' in row
    assert ">alice<" in row
    assert ">send_email<" in row
    # One line, by name (all short here), whole in the title.
    line = "body: Hello · subject: Hi · to: x@example.com"
    assert f'<span class="approval-summary" title="{line}">{line}</span>' in row
    # Age and expiry: relative, with the exact time in the title.
    assert re.search(
        r'<td class="field-age"><time class="approval-age" datetime="[^"]+" '
        r'title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">0\xa0minutes ago</time>',
        row,
    )
    assert re.search(
        r'<time class="approval-expiry" datetime="[^"]+" title="[^"]+">'
        r"expires in \d+\xa0(hours|day)</time>",
        row,
    )
    assert ">pending<" in row.lower()


def test_it_summarises_long_arguments_on_one_escaped_line(user, approver_client):
    approval = parked(
        user,
        arguments={
            "to": "x@example.com",
            "subject": "<script>alert(1)</script>",
            "body": "line one\nline two " + "long " * 40,
        },
    )

    html = approver_client.get(CHANGELIST).content.decode()

    [summary] = re.findall(r'<span class="approval-summary" title="([^"]*)">([^<]*)</span>', html)
    title, shown = summary
    assert "<script>" not in html.split('id="result_list"')[1].split("</table>")[0]
    # Short values first: the long body comes last.
    assert shown.startswith("subject: &lt;script&gt;alert(1)&lt;/script&gt; · to: x@example.com")
    assert shown.endswith("…") and len(shown) < len(title)
    assert "line one line two" in title and "\n" not in title
    assert approval.pk in listed(approver_client.get(CHANGELIST))


def test_it_filters_by_status_and_by_tool(user, approver, approver_client):
    email = parked(user, tool="send_email")
    note = parked(user, tool="post_note", arguments={"text": "hi"})
    rejected = parked(user, tool="send_email")
    approval_services.approval_decide(
        approval_id=rejected.pk, actor=approver, approve=False, reason="no"
    )

    by_status = approver_client.get(CHANGELIST, {"status__exact": "pending"})
    by_tool = approver_client.get(CHANGELIST, {"status__exact": "all", "tool_name": "send_email"})
    both = approver_client.get(CHANGELIST, {"status__exact": "rejected", "tool_name": "send_email"})

    assert listed(by_status) == [email.pk, note.pk]
    assert listed(by_tool) == [email.pk, rejected.pk]
    assert listed(both) == [rejected.pk]
    # The filter sidebar offers exactly these choices.
    html = approver_client.get(CHANGELIST).content.decode()
    assert "?status__exact=pending" in html
    assert "?tool_name=post_note" in html


def test_it_lets_an_approver_approve_selected_requests(user, approver_client):
    first = parked(user)
    second = parked(user)

    response = approver_client.post(
        CHANGELIST,
        {"action": "approve_selected", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Approved 2 request(s)." in page_messages(response)
    assert_decided(first, ApprovalStatus.APPROVED, by="carol")
    assert_decided(second, ApprovalStatus.APPROVED, by="carol")


def test_it_asks_for_a_reason_before_rejecting_selected_requests(user, approver_client):
    approval = parked(user)
    selection = {"action": "reject_selected", "_selected_action": [approval.pk]}

    confirm = approver_client.post(CHANGELIST, selection)
    approval.refresh_from_db()
    assert confirm.status_code == 200
    assert approval.status == ApprovalStatus.PENDING
    html = confirm.content.decode()
    assert 'name="reason"' in html
    assert f'name="_selected_action" value="{approval.pk}"' in html
    assert 'name="confirm_reject"' in html

    without_reason = approver_client.post(CHANGELIST, {**selection, "confirm_reject": "yes"})
    approval.refresh_from_db()
    assert without_reason.status_code == 200
    assert "This field is required." in without_reason.content.decode()
    assert approval.status == ApprovalStatus.PENDING

    done = approver_client.post(
        CHANGELIST,
        {**selection, "confirm_reject": "yes", "reason": "wrong recipient"},
        follow=True,
    )
    assert "Rejected 1 request(s)." in page_messages(done)
    assert_decided(approval, ApprovalStatus.REJECTED, by="carol", reason="wrong recipient")


def test_it_reports_refused_decisions_in_an_action_without_failing(user, approver, approver_client):
    pending = parked(user)
    cancelled = parked(user)
    lifecycle.turn_request_cancel(session=cancelled.turn.session, actor=user)

    response = approver_client.post(
        CHANGELIST,
        {"action": "approve_selected", "_selected_action": [pending.pk, cancelled.pk]},
        follow=True,
    )

    assert response.status_code == 200
    shown = page_messages(response)
    assert "Approved 1 request(s)." in shown
    assert any(f"Not decided: #{cancelled.pk}." in m for m in shown)
    assert_decided(pending, ApprovalStatus.APPROVED, by="carol")
    cancelled.refresh_from_db()
    assert cancelled.status == ApprovalStatus.CANCELLED
    assert cancelled.decided_by is None


def test_it_shows_approve_and_reject_buttons_to_an_approver(user, approver_client):
    approval = parked(user)

    html = approver_client.get(change_url(approval)).content.decode()

    assert f'action="{button_url(approval, "approve")}"' in html
    assert f'action="{button_url(approval, "reject")}"' in html
    # Read-only: no form field for the request itself, and no save button.
    assert 'name="_save"' not in html
    assert 'name="status"' not in html


def test_it_approves_with_the_change_page_button(user, approver_client):
    approval = parked(user)

    response = approver_client.post(
        button_url(approval, "approve"), {"reason": "looks fine"}, follow=True
    )

    assert response.redirect_chain[-1][0] == CHANGELIST
    assert f"Approved request #{approval.pk} (send_email)." in page_messages(response)
    assert_decided(approval, ApprovalStatus.APPROVED, by="carol", reason="looks fine")


def test_it_rejects_with_the_change_page_button_and_a_reason(user, approver_client):
    approval = parked(user)

    without_reason = approver_client.post(button_url(approval, "reject"), {}, follow=True)
    approval.refresh_from_db()
    assert "Give a reason to reject this request." in page_messages(without_reason)
    assert approval.status == ApprovalStatus.PENDING

    response = approver_client.post(
        button_url(approval, "reject"), {"reason": "not this week"}, follow=True
    )

    assert f"Rejected request #{approval.pk} (send_email)." in page_messages(response)
    assert_decided(approval, ApprovalStatus.REJECTED, by="carol", reason="not this week")


def test_it_explains_a_refused_button_decision_instead_of_failing(user, approver, approver_client):
    approval = parked(user)
    approval_services.approval_decide(approval_id=approval.pk, actor=approver, approve=False)

    response = approver_client.post(button_url(approval, "approve"), follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == change_url(approval)
    assert any(
        m.startswith(f"Request #{approval.pk} was not decided.") for m in page_messages(response)
    )
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.REJECTED
    # A decided request has no buttons any more.
    assert f'action="{button_url(approval, "approve")}"' not in response.content.decode()


def test_it_accepts_decisions_only_as_a_post_with_a_csrf_token(user, approver):
    approval = parked(user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(approver)

    assert client.get(button_url(approval, "approve")).status_code == 405
    assert client.post(button_url(approval, "approve")).status_code == 403
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING

    client.get(change_url(approval))
    token = client.cookies["csrftoken"].value
    response = client.post(button_url(approval, "approve"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED


def test_it_hides_decisions_from_staff_who_may_only_view(user, viewer_client):
    approval = parked(user)

    listing = viewer_client.get(CHANGELIST)
    page = viewer_client.get(change_url(approval))

    assert listing.status_code == 200
    assert listed(listing) == [approval.pk]
    html = listing.content.decode()
    assert "approve_selected" not in html
    assert "reject_selected" not in html
    assert 'name="_selected_action"' not in html
    assert page.status_code == 200
    assert button_url(approval, "approve") not in page.content.decode()
    assert button_url(approval, "reject") not in page.content.decode()


def test_it_refuses_forged_decisions_from_staff_who_may_only_view(user, viewer_client):
    approval = parked(user)

    action = viewer_client.post(
        CHANGELIST, {"action": "approve_selected", "_selected_action": [approval.pk], "index": 0}
    )
    confirmed_reject = viewer_client.post(
        CHANGELIST,
        {
            "action": "reject_selected",
            "_selected_action": [approval.pk],
            "confirm_reject": "yes",
            "reason": "forged",
        },
    )
    approve_button = viewer_client.post(button_url(approval, "approve"))
    reject_button = viewer_client.post(button_url(approval, "reject"), {"reason": "forged"})
    edit = viewer_client.post(change_url(approval), {"status": "approved"})

    assert action.status_code in (200, 302, 403)
    assert confirmed_reject.status_code in (200, 302, 403)
    assert approve_button.status_code == 403
    assert reject_button.status_code == 403
    assert edit.status_code == 403
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert approval.decided_by is None
    approval.turn.refresh_from_db()
    assert approval.turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert not approval.turn.events.filter(kind=EventKind.APPROVAL_DECIDED).exists()


def test_it_lets_nobody_add_requests_by_form(approver_client, admin_client):
    add = reverse("admin:approvals_app_approvalrequest_add")

    assert approver_client.get(add).status_code == 403
    assert admin_client.get(add).status_code == 403
    assert admin_client.post(add, {"tool_name": "send_email"}).status_code == 403
    assert not ApprovalRequest.objects.exists()


def test_it_gives_superusers_the_decisions(user, admin_client):
    approval = parked(user)

    html = admin_client.get(CHANGELIST).content.decode()
    assert "approve_selected" in html

    admin_client.post(CHANGELIST, {"action": "approve_selected", "_selected_action": [approval.pk]})
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.decided_by.get_username() == "admin"


# The queue's row buttons: POSTs of the changelist's own form to the decision URLs.


def row_button(html: str, approval: ApprovalRequest, decision: str) -> str:
    rows = re.findall(r"<tr[^>]*>.*?</tr>", html, re.S)
    [row] = [r for r in rows if f'name="_selected_action" value="{approval.pk}"' in r]
    [button] = re.findall(
        rf'<button type="submit"[^>]*formaction="{re.escape(button_url(approval, decision))}"'
        r"[^>]*>",
        row,
    )
    return button


def test_it_offers_approve_and_reject_on_each_pending_row(user, approver_client, viewer_client):
    approval = parked(user)

    html = approver_client.get(CHANGELIST).content.decode()

    assert 'name="from_queue"' in row_button(html, approval, "approve")
    assert 'name="from_queue"' in row_button(html, approval, "reject")
    # The buttons submit the changelist's form, which carries the CSRF token.
    changelist_form = html.split('id="changelist-form"')[1].split("</form>")[0]
    assert 'name="csrfmiddlewaretoken"' in changelist_form
    assert "formaction=" in changelist_form
    # Staff who may only view get no buttons.
    assert "formaction=" not in viewer_client.get(CHANGELIST).content.decode()


def test_a_row_approve_decides_once_and_a_second_is_refused(user, approver_client):
    approval = parked(user)
    row_post = {"from_queue": "1", "action": "", "index": "0"}

    response = approver_client.post(button_url(approval, "approve"), row_post, follow=True)

    assert response.redirect_chain[-1][0] == CHANGELIST
    assert f"Approved request #{approval.pk} (send_email)." in page_messages(response)
    assert_decided(approval, ApprovalStatus.APPROVED, by="carol")
    # The same button again (a second tab, a double click): refused, back to the queue.
    again = approver_client.post(button_url(approval, "approve"), row_post, follow=True)
    assert again.redirect_chain[-1][0] == CHANGELIST
    [shown] = page_messages(again)
    assert shown.startswith(f"Request #{approval.pk} was not decided. It was already decided")
    assert approval.decisions.count() == 1
    assert_decided(approval, ApprovalStatus.APPROVED, by="carol")


def test_a_row_reject_asks_for_a_reason_then_rejects(user, approver_client):
    approval = parked(user, arguments={"to": "x@example.com", "subject": "<b>Hi</b>"})

    asked = approver_client.post(button_url(approval, "reject"), {"from_queue": "1"})

    assert asked.status_code == 200
    page = asked.content.decode()
    assert 'id="reject-one-form"' in page
    assert re.search(r'<textarea name="reason"[^>]*required', page)
    assert "subject: &lt;b&gt;Hi&lt;/b&gt;" in page
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    # An empty reason is asked for again; nothing is decided.
    blank = approver_client.post(button_url(approval, "reject"), {"from_queue": "1", "reason": " "})
    assert blank.status_code == 200
    assert blank.context["form"].errors["reason"]
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING

    done = approver_client.post(
        button_url(approval, "reject"),
        {"from_queue": "1", "reason": "wrong recipient"},
        follow=True,
    )

    assert done.redirect_chain[-1][0] == CHANGELIST
    assert f"Rejected request #{approval.pk} (send_email)." in page_messages(done)
    assert_decided(approval, ApprovalStatus.REJECTED, by="carol", reason="wrong recipient")
    # Reject… on a row drawn before that decision: no reason asked for, the queue says why.
    late = approver_client.post(button_url(approval, "reject"), {"from_queue": "1"}, follow=True)
    assert late.redirect_chain[-1][0] == CHANGELIST
    [shown] = page_messages(late)
    assert shown.startswith(f"Request #{approval.pk} was not decided. It was already decided")
    assert approval.decisions.count() == 1


def test_a_row_approve_by_someone_outside_the_group_is_refused(user, admin_client, approver):
    # A superuser sees every request but decides only those of groups they are in.
    group = Group.objects.create(name="mail approvers")
    approver.groups.add(group)
    turn, approval = waiting_turn(user, group=group.pk)

    html = admin_client.get(CHANGELIST).content.decode()
    row_button(html, approval, "approve")
    response = admin_client.post(button_url(approval, "approve"), {"from_queue": "1"}, follow=True)

    assert response.redirect_chain[-1][0] == CHANGELIST
    [shown] = page_messages(response)
    assert shown == (
        f"Request #{approval.pk} was not decided. "
        "Only members of the group the policy names may decide this request."
    )
    assert "Traceback" not in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert not approval.decisions.exists()
    turn.refresh_from_db()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL


def test_a_row_approve_of_ones_own_request_under_four_eyes_is_refused(user):
    user.is_staff = True
    user.save()
    user.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))
    _, approval = waiting_turn(user, allow_self_approval=False)
    client = Client()
    client.force_login(user)

    response = client.post(button_url(approval, "approve"), {"from_queue": "1"}, follow=True)

    [shown] = page_messages(response)
    assert shown == (
        f"Request #{approval.pk} was not decided. "
        "The person who asked for this call may not approve it; another approver must."
    )
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert not approval.decisions.exists()
