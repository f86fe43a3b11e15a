"""The user whose call waits for approval is told who may decide, that they were told, and when
the request expires."""

import pytest
from django.contrib.auth.models import Group, Permission

from approvals_app.models import PolicyRule
from sessions_app.core import lifecycle, sessions
from tests.html_tree import parse

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_the_card_says_who_decides_who_was_told_and_until_when(
    client, user, django_user_model, llm, run_turn_in_thread, outbox
):
    ops = Group.objects.create(name="ops")
    decide = Permission.objects.get(codename="decide_approvalrequest")
    for name in ("dana", "erin"):
        member = django_user_model.objects.create_user(name, email=f"{name}@example.com")
        member.user_permissions.add(decide)
        member.groups.add(ops)
    PolicyRule.objects.create(
        name="ops decide", tool_name="send_email", outcome="require_approval", group=ops, quorum=2
    )
    session = sessions.session_create(owner=user, title="Waiting")
    turn = lifecycle.turn_start(
        session=session, message="please send an email to x@example.com", actor=user
    )
    run_turn_in_thread(turn.pk).join()
    approval = turn.approval_requests.get()

    client.force_login(user)
    page = parse(client.get(f"/sessions/{session.pk}/").content.decode())
    text = " ".join(page.by_id(f"approval-{approval.pk}-state").text.split())

    expires = approval.expires_at
    assert text == (
        "Waiting for approval by the group ops (2 needed) · 2 approvers told by e-mail · "
        f"expires {expires.day} {expires:%b %Y, %H:%M} UTC"
    )
