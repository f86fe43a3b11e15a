"""Approve for the session: later matching calls of the tool run without waiting, until revoked."""

import pytest
from django.contrib.auth.models import Group, Permission
from rest_framework.test import APIClient

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import Outcome, PolicyRule, SessionGrant
from sessions_app.core import lifecycle, sessions
from tests.turn_states import assert_error, waiting_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def approver_api(approver):
    client = APIClient()
    client.force_authenticate(approver)
    return client


@pytest.fixture
def ask(user, llm, outbox, run_turn_in_thread):
    """Runs a turn asking for ``message`` in ``session`` until it ends or parks."""

    def run(session, message: str):
        turn = lifecycle.turn_start(session=session, message=message, actor=user)
        run_turn_in_thread(turn.pk).join()
        turn.refresh_from_db()
        return turn

    return run


@pytest.fixture
def granted(user, approver_api, ask, run_turn_in_thread):
    """A session whose first e-mail was approved for the session with ``grant``."""

    def make(grant):
        session = sessions.session_create(owner=user)
        first = ask(session, "please send an email to x@example.com")
        approval = first.approval_requests.get()
        response = approver_api.post(
            f"/api/approvals/{approval.pk}/approve/", {"grant": grant}, format="json"
        )
        assert response.status_code == 200, response.content
        assert run_turn_in_thread(first.pk).join() == TurnStatus.COMPLETED
        return session, SessionGrant.objects.get(approval=approval)

    return make


def test_it_runs_a_later_call_of_the_tool_without_a_request(granted, ask, outbox):
    session, grant = granted(True)

    second = ask(session, "please send an email to someone@elsewhere.test")

    assert second.status == TurnStatus.COMPLETED
    assert not second.approval_requests.exists()
    assert [m.to for m in outbox] == [["x@example.com"], ["someone@elsewhere.test"]]
    decided = second.events.get(kind=EventKind.APPROVAL_DECIDED).data
    assert (decided["grant"], decided["decided_by"], decided["decision"]) == (
        grant.pk,
        "carol",
        "approved",
    )


def test_it_makes_a_call_outside_the_grants_match_wait(granted, ask, outbox):
    session, grant = granted({"match": ["to"]})
    assert grant.match == {"to": "x@example.com"}

    same = ask(session, "please send an email to x@example.com")
    other = ask(session, "please send an email to someone@elsewhere.test")

    assert same.status == TurnStatus.COMPLETED and not same.approval_requests.exists()
    assert other.status == TurnStatus.WAITING_FOR_APPROVAL
    assert [m.to for m in outbox] == [["x@example.com"], ["x@example.com"]]


def test_it_stops_applying_a_revoked_grant(granted, ask, approver_api, approver):
    session, grant = granted(True)

    response = approver_api.post(f"/api/sessions/{session.pk}/grants/{grant.pk}/revoke/")

    assert response.status_code == 200
    assert response.json()["revoked_by"] == "carol"
    later = ask(session, "please send an email to x@example.com")
    assert later.status == TurnStatus.WAITING_FOR_APPROVAL
    grant.refresh_from_db()
    assert grant.revoked_at is not None and grant.revoked_by == approver


def test_it_tells_the_timeline_of_a_revocation_once(granted, approver_api):
    session, grant = granted({"match": ["to"]})

    for _ in range(2):
        response = approver_api.post(f"/api/sessions/{session.pk}/grants/{grant.pk}/revoke/")
        assert response.status_code == 200

    [revoked] = session.events.filter(kind=EventKind.APPROVAL_GRANT_REVOKED)
    assert revoked.turn is None
    assert revoked.data == {
        "grant": grant.pk,
        "tool": "send_email",
        "match": {"to": "x@example.com"},
        "revoked_by": "carol",
    }
    assert revoked.seq == session.events.order_by("-seq").first().seq


def test_it_never_applies_a_grant_outside_its_session(granted, ask, user):
    session, grant = granted(True)

    elsewhere = ask(sessions.session_create(owner=user), "please send an email to x@example.com")

    assert elsewhere.status == TurnStatus.WAITING_FOR_APPROVAL
    session.delete()
    assert not SessionGrant.objects.filter(pk=grant.pk).exists()


def test_it_refuses_a_grant_on_a_request_that_needs_two_approvers(user, approver_api):
    _, approval = waiting_turn(user, approvals_needed=2)

    assert_error(
        approver_api.post(f"/api/approvals/{approval.pk}/approve/", {"grant": True}, format="json"),
        409,
        "grant_not_allowed",
    )
    approval.refresh_from_db()
    assert approval.approvals_given == 0 and not SessionGrant.objects.exists()


def test_it_refuses_a_grant_matching_an_argument_the_call_lacks(user, approver_api):
    _, approval = waiting_turn(user)

    assert_error(
        approver_api.post(
            f"/api/approvals/{approval.pk}/approve/", {"grant": {"match": ["cc"]}}, format="json"
        ),
        400,
        "invalid_grant",
    )
    assert not SessionGrant.objects.exists()


def test_it_does_not_let_a_grant_skip_a_stricter_rule(granted, ask):
    session, _ = granted(True)
    PolicyRule.objects.create(
        name="Two for outside",
        tool_name="send_email",
        field="to",
        operator="email_domain_in",
        value="elsewhere.test",
        outcome=Outcome.REQUIRE_APPROVAL,
        quorum=2,
    )

    later = ask(session, "please send an email to someone@elsewhere.test")

    assert later.status == TurnStatus.WAITING_FOR_APPROVAL


def test_it_revokes_grants_from_the_admin(granted, client, approver):
    _, grant = granted(True)
    client.force_login(approver)

    listed = client.get("/admin/approvals_app/sessiongrant/")
    response = client.post(
        "/admin/approvals_app/sessiongrant/",
        {"action": "revoke_selected", "_selected_action": [grant.pk]},
    )

    assert listed.status_code == 200
    assert response.status_code == 302
    grant.refresh_from_db()
    assert grant.revoked_at is not None and grant.revoked_by == approver


def test_it_applies_a_grant_only_where_its_granter_could_approve(granted, ask, django_user_model):
    session, _ = granted(True)
    mail_approvers = Group.objects.create(name="mail approvers")
    member = django_user_model.objects.create_user("mia", password="mia-pw-1")
    member.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))
    member.groups.add(mail_approvers)
    PolicyRule.objects.create(
        name="Mail approvers decide",
        tool_name="send_email",
        outcome=Outcome.REQUIRE_APPROVAL,
        group=mail_approvers,
    )

    later = ask(session, "please send an email to x@example.com")

    assert later.status == TurnStatus.WAITING_FOR_APPROVAL


def test_it_does_not_let_the_requesters_own_grant_skip_four_eyes(user, ask, run_turn_in_thread):
    user.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))
    own_api = APIClient()
    own_api.force_authenticate(user)
    session = sessions.session_create(owner=user)
    first = ask(session, "please send an email to x@example.com")
    approval = first.approval_requests.get()
    own_api.post(f"/api/approvals/{approval.pk}/approve/", {"grant": True}, format="json")
    assert run_turn_in_thread(first.pk).join() == TurnStatus.COMPLETED
    PolicyRule.objects.create(
        name="Four eyes",
        tool_name="send_email",
        outcome=Outcome.REQUIRE_APPROVAL,
        allow_self_approval=False,
    )

    later = ask(session, "please send an email to x@example.com")

    assert later.status == TurnStatus.WAITING_FOR_APPROVAL
