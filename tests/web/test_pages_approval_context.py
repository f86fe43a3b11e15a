"""An approver who may decide a request, or decided it, reads the conversation behind it,
read-only; nobody else reads another person's conversation."""

import pytest
from django.test import Client
from django.urls import reverse

from approvals_app import services
from approvals_app.models import ApprovalStatus
from tests import turn_states
from tests.html_tree import parse

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_of(session_id) -> str:
    return reverse("session-detail", args=[session_id])


def test_an_approver_reads_the_conversation_read_only(user, make_approver):
    turn, approval = turn_states.waiting_turn(user)
    erin = make_approver("erin")

    response = logged_in(erin).get(page_of(turn.session_id))

    assert response.status_code == 200
    html = response.content.decode()
    tree = parse(html)
    line = " ".join(tree.by_id("read-only").visible_text.split())
    assert line.startswith("Read-only: this is alice\u2019s conversation.")
    assert f"may decide its request {approval.pk} for send_email" in line
    assert turn.user_message in tree.visible_text
    for control in ('id="composer"', 'id="stop"', 'id="rename"', 'id="delete"', "chat.js"):
        assert control not in html
    # The decision is the inbox's: the card here offers no controls.
    assert 'class="approve"' not in html


def test_an_approver_who_decided_still_reads_it(user, make_approver):
    turn, approval = turn_states.waiting_turn(user)
    erin = make_approver("erin")
    services.approval_decide(approval_id=approval.pk, actor=erin, approve=False, reason="no")

    response = logged_in(erin).get(page_of(turn.session_id))

    assert response.status_code == 200
    line = " ".join(parse(response.content.decode()).by_id("read-only").visible_text.split())
    assert f"decided on its request {approval.pk}" in line


def test_others_still_get_a_404(user, other_user, make_approver, django_user_model):
    from django.contrib.auth.models import Group

    turn, approval = turn_states.waiting_turn(user)
    ops = Group.objects.create(name="ops")
    restricted_turn = turn_states.waiting_turn(user, group=ops.pk)[0]
    outsider = make_approver("hank")
    decided_elsewhere = turn_states.waiting_turn(user)
    services.approval_decide(
        approval_id=decided_elsewhere[1].pk, actor=make_approver("frank"), approve=True
    )

    assert logged_in(other_user).get(page_of(turn.session_id)).status_code == 404
    assert logged_in(outsider).get(page_of(restricted_turn.session_id)).status_code == 404
    # Decided by someone else: nothing left for this approver to decide there.
    assert logged_in(outsider).get(page_of(decided_elsewhere[0].session_id)).status_code == 404
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_the_owner_still_gets_the_whole_page(user):
    turn, _ = turn_states.waiting_turn(user)

    html = logged_in(user).get(page_of(turn.session_id)).content.decode()

    assert 'id="composer"' in html and 'id="read-only"' not in html
