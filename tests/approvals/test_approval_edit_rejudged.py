"""Approving with edited arguments is judged again by the policy, as the edited call will run: a
rule that denies it refuses the approval (the request waits on), and a stricter rule's group,
quorum and four-eyes govern the request from then on, whichever path the approver takes."""

import json

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalStatus, Outcome, SessionGrant
from tests.approvals.test_approval_edit import approve
from tests.approvals.test_approval_policies import rule
from tests.html_tree import parse
from tests.turn_states import EMAIL_CALL, assert_error, waiting_turn
from tests.web.test_approval_admin_edit import approve_url, assert_still_pending, form_errors

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def mail(to: str) -> dict:
    return {"to": to, "subject": "Report", "body": "Edited by a person."}


DENIED = mail("spy@rival.test")
TO_THE_BOARD = mail("chair@board.test")
TO_THE_AUDITORS = mail("lead@audit.test")
TO_A_PARTNER = mail("desk@partner.test")


@pytest.fixture
def board():
    return Group.objects.create(name="board")


@pytest.fixture
def mail_policy(board):
    """Rules for the addresses approvers edit calls to, by name; none matches the requested
    calls (to example.com), which wait by the tool's default."""

    def to_domain(name, outcome, domain, position, **needs):
        return rule(
            name,
            outcome,
            position=position,
            field="to",
            operator="email_domain_in",
            value=domain,
            **needs,
        )

    rules = [
        to_domain("Never to competitors", Outcome.DENY, "rival.test", 1),
        to_domain(
            "Board mail needs two of the board",
            Outcome.REQUIRE_APPROVAL,
            "board.test",
            2,
            group=board,
            quorum=2,
        ),
        to_domain(
            "Auditors: four eyes",
            Outcome.REQUIRE_APPROVAL,
            "audit.test",
            3,
            allow_self_approval=False,
        ),
        to_domain("Partner mail", Outcome.ALLOW, "partner.test", 4),
    ]
    return {made.name: made for made in rules}


def assert_waits_as_requested(turn, approval, requested) -> None:
    approval.refresh_from_db()
    turn.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert (approval.arguments, approval.edited_arguments) == (requested, None)
    assert not approval.decisions.exists()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert not turn.events.filter(kind=EventKind.APPROVAL_DECIDED).exists()


def test_it_refuses_an_edit_to_a_denied_address_naming_the_rule(
    email_waiting_for_approval, mail_policy, approver, make_approver, outbox, run_turn_in_thread
):
    turn, approval = email_waiting_for_approval()
    requested = dict(approval.arguments)

    body = assert_error(approve(approver, approval, arguments=DENIED), 409, "policy_denied")

    assert '"Never to competitors"' in body["detail"]
    assert_waits_as_requested(turn, approval, requested)
    # The request can still be decided as it stands, and the denied address never gets mail.
    assert approve(make_approver("erin"), approval).json()["status"] == "approved"
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED
    assert [message.to for message in outbox] == [[requested["to"]]]


def test_it_lets_only_the_rules_group_release_an_edit_under_its_quorum(
    client,
    user,
    email_waiting_for_approval,
    mail_policy,
    board,
    approver,
    make_approver,
    outbox,
    run_turn_in_thread,
):
    erin, frank = make_approver("erin"), make_approver("frank")
    erin.groups.add(board)
    frank.groups.add(board)
    turn, approval = email_waiting_for_approval()
    requested = dict(approval.arguments)

    # carol may decide the request, but not the call as edited: its rule is the board's.
    assert_error(approve(approver, approval, arguments=TO_THE_BOARD), 403, "not_eligible")
    assert_waits_as_requested(turn, approval, requested)

    edited = approve(erin, approval, arguments=TO_THE_BOARD).json()

    assert (edited["status"], edited["approvals_given"], edited["approvals_needed"]) == (
        "pending",
        1,
        2,
    )
    assert edited["group"] == "board"
    approval.refresh_from_db()
    assert (approval.approvals_needed, approval.group, approval.edited_arguments) == (
        2,
        board,
        TO_THE_BOARD,
    )
    # Now only the board decides it, carol no more.
    assert_error(approve(approver, approval), 403, "not_eligible")
    turn.refresh_from_db()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL

    assert approve(frank, approval).json()["status"] == "approved"
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED
    assert [(m.to, m.body) for m in outbox] == [(["chair@board.test"], "Edited by a person.")]
    # The timeline names the rule that governs the edited call, and what it needs.
    decided = turn.events.filter(kind=EventKind.APPROVAL_DECIDED).first().data
    assert decided["policy"] == {
        "rule": mail_policy["Board mail needs two of the board"].pk,
        "name": "Board mail needs two of the board",
        "outcome": "require_approval",
    }
    client.force_login(user)
    page = parse(client.get(f"/sessions/{turn.session_id}/").content.decode())
    [rejudged] = page.by_class("rejudged")
    assert " ".join(rejudged.text.split()) == (
        'The rule "Board mail needs two of the board" judged the call as edited: '
        "it needs 2 approvers from board."
    )


def test_it_refuses_the_requesters_own_approval_of_an_edit_under_four_eyes(
    make_approver, mail_policy, approver
):
    requester = make_approver("dave")
    turn, approval = waiting_turn(requester)

    assert_error(
        approve(requester, approval, arguments=TO_THE_AUDITORS), 409, "self_approval_forbidden"
    )

    assert_waits_as_requested(turn, approval, EMAIL_CALL["arguments"])
    # Another approver may make the same edit: four-eyes holds for the requester from now on.
    assert approve(approver, approval, arguments=TO_THE_AUDITORS).json()["status"] == "approved"
    approval.refresh_from_db()
    assert (approval.allow_self_approval, approval.arguments_to_run) == (False, TO_THE_AUDITORS)


def test_it_approves_an_edit_an_allow_rule_covers_as_before(user, approver, mail_policy):
    turn, approval = waiting_turn(user)

    response = approve(approver, approval, arguments=TO_A_PARTNER)

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["edited_by"]) == ("approved", "carol")
    approval.refresh_from_db()
    assert (approval.approvals_needed, approval.group, approval.allow_self_approval) == (
        1,
        None,
        True,
    )
    assert approval.arguments_to_run == TO_A_PARTNER
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED
    decided = turn.events.get(kind=EventKind.APPROVAL_DECIDED).data
    assert decided["policy"]["name"] == "Partner mail"


def test_it_refuses_a_grant_with_an_edit_whose_rule_needs_several_approvers(
    user, mail_policy, board, make_approver
):
    erin = make_approver("erin")
    erin.groups.add(board)
    turn, approval = waiting_turn(user)

    assert_error(
        approve(erin, approval, arguments=TO_THE_BOARD, grant=True), 409, "grant_not_allowed"
    )

    assert_waits_as_requested(turn, approval, EMAIL_CALL["arguments"])
    assert not SessionGrant.objects.exists()


def test_it_shows_a_denied_edit_on_the_admin_change_page_as_a_refusal_of_the_arguments(
    user, approver, mail_policy
):
    turn, approval = waiting_turn(user)
    client = Client()
    client.force_login(approver)

    response = client.post(approve_url(approval), {"arguments": json.dumps(DENIED)})

    assert response.status_code == 200
    [problem] = form_errors(response)
    assert '"Never to competitors"' in problem
    assert any(problem in str(message) for message in response.context["messages"])
    assert_still_pending(approval)
    turn.refresh_from_db()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
