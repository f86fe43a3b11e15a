"""A request nobody could ever approve is rejected at once, naming its rule: the model is told,
nobody is notified, and nothing waits for a day."""

import pytest
from django.contrib.auth.models import Group, Permission

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalStatus, Outcome, PolicyRule
from sessions_app.core import lifecycle, sessions
from tests.conftest import ASK_FOR_EMAIL, run_turn_to_end
from tests.queued_tasks import run_queued_tasks

pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.nobody_on_duty,
]

RULE = "Mail needs the mail desk"


def approver_in(group, username, django_user_model, **fields):
    person = django_user_model.objects.create_user(
        username, password=f"{username}-pw-1", email=f"{username}@example.com", **fields
    )
    person.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))
    if group is not None:
        person.groups.add(group)
    return person


@pytest.fixture
def mail_desk():
    desk = Group.objects.create(name="mail desk")
    PolicyRule.objects.create(
        name=RULE, tool_name="send_email", outcome=Outcome.REQUIRE_APPROVAL, group=desk
    )
    return desk


@pytest.fixture
def ask(user, llm, outbox, run_turn_in_thread):
    """Runs a turn asking for an e-mail until it parks; returns the turn and its request."""

    def run():
        session = sessions.session_create(owner=user)
        turn = lifecycle.turn_start(session=session, message=ASK_FOR_EMAIL, actor=user)
        run_turn_in_thread(turn.pk).join()
        turn.refresh_from_db()
        return turn, turn.approval_requests.get()

    return run


def assert_rejected_at_once(turn, approval, llm, outbox, *, rule: str, why: str):
    assert approval.status == ApprovalStatus.REJECTED
    assert approval.decided_by is None and approval.decided_at is not None
    assert f'policy rule "{rule}"' in approval.reason and why in approval.reason
    # Not left waiting: queued again at once, to tell the model.
    assert turn.status == TurnStatus.QUEUED
    assert run_queued_tasks("approvals_app.tasks.notify", approval.pk, "pending") == []
    decided = turn.events.get(kind=EventKind.APPROVAL_DECIDED).data
    assert (decided["status"], decided["decided_by"], decided["reason"]) == (
        "rejected",
        None,
        approval.reason,
    )
    assert decided["nobody_to_approve"] is True

    assert run_turn_to_end(turn.pk) == TurnStatus.COMPLETED

    told = llm.requests[-1].body["messages"][-1]["content"]
    assert told == f"Rejected: {approval.reason}"
    result = turn.events.get(kind=EventKind.TOOL_RESULT).data
    assert result["not_run"] == "rejected"
    assert outbox == []


def test_it_rejects_a_request_whose_group_is_empty(ask, llm, outbox, mail_desk):
    turn, approval = ask()

    assert_rejected_at_once(
        turn, approval, llm, outbox, rule=RULE, why='the group "mail desk" has no active member'
    )


def test_it_rejects_a_request_whose_group_has_only_inactive_members(
    ask, llm, outbox, mail_desk, django_user_model
):
    approver_in(mail_desk, "gone", django_user_model, is_active=False)
    # An active approver outside the group does not count: the rule names the group.
    approver_in(None, "elsewhere", django_user_model)

    turn, approval = ask()

    assert_rejected_at_once(
        turn, approval, llm, outbox, rule=RULE, why='the group "mail desk" has no active member'
    )


def test_it_rejects_a_request_only_its_requester_could_approve_under_four_eyes(
    ask, llm, outbox, user
):
    user.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))
    PolicyRule.objects.create(
        name="Four eyes on mail",
        tool_name="send_email",
        outcome=Outcome.REQUIRE_APPROVAL,
        allow_self_approval=False,
    )

    turn, approval = ask()

    assert_rejected_at_once(
        turn,
        approval,
        llm,
        outbox,
        rule="Four eyes on mail",
        why="the only one who may approve it is the person who asked",
    )


def test_it_rejects_a_request_no_active_user_may_approve(ask, llm, outbox, django_user_model):
    approver_in(None, "retired", django_user_model, is_active=False)

    turn, approval = ask()

    assert_rejected_at_once(
        turn,
        approval,
        llm,
        outbox,
        rule="the tool's default",
        why="no active user may approve tool calls",
    )


def test_it_lets_a_request_wait_when_one_member_may_approve(ask, mail_desk, django_user_model):
    approver_in(mail_desk, "desk", django_user_model)

    turn, approval = ask()

    assert approval.status == ApprovalStatus.PENDING
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
