"""A new pending request is posted to the Slack channel with Approve and Reject buttons, and the
message shows each decision wherever it was made; Slack being down never touches the turn.

The turn runs through the real agent loop; the Slack tasks go through the real broker and are
then run here as a worker would, against the fake Web API on loopback."""

import socket

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from agentproj.vocabulary import TurnStatus
from approvals_app import services as approval_services
from approvals_app.integrations.slack import SlackFailed
from approvals_app.models import ApprovalStatus, Outcome, PolicyRule
from sessions_app.core import lifecycle, sessions
from tests.slack_helpers import (
    CHANNEL,
    buttons,
    drop_queued_tasks,
    outcome,
    run_slack_tasks,
    section,
    shown,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def test_it_posts_the_request_with_two_buttons(email_waiting_for_approval, slack, people):
    PolicyRule.objects.create(
        name="Outside mail waits for an approver",
        tool_name="send_email",
        outcome=Outcome.REQUIRE_APPROVAL,
        quorum=2,
    )
    turn, approval = email_waiting_for_approval()
    # The turn's worker loop called nothing: the message waits in the broker.
    assert slack.calls == []

    assert run_slack_tasks() == [f"approval {approval.pk}: message posted"]

    assert slack.methods() == ["chat.postMessage"]
    _method, posted = slack.calls[0]
    assert posted["channel"] == CHANNEL
    message = shown(slack)
    assert buttons(message) == [
        ("Approve", f"approval:{approval.pk}:approve"),
        ("Reject", f"approval:{approval.pk}:reject"),
    ]
    text = section(message)
    assert f"*send_email* (request {approval.pk}), asked for by alice" in text
    assert "x@example.com" in text
    assert "Rule: Outside mail waits for an approver · needs 2 approvers" in text
    assert outcome(message) == ""
    approval.refresh_from_db()
    assert (approval.slack_channel, approval.slack_ts) == next(iter(slack.messages))
    # What a newcomer running the fake reads.
    assert "[Approve]" in slack.out.getvalue()
    assert "[Reject]" in slack.out.getvalue()
    turn.refresh_from_db()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL


def test_a_decision_elsewhere_updates_the_message(
    email_waiting_for_approval, slack, people, run_turn_in_thread
):
    turn, approval = email_waiting_for_approval()
    run_slack_tasks()
    api = APIClient()
    api.force_authenticate(people["carol"])

    answer = api.post(f"/api/approvals/{approval.pk}/approve/", {}, format="json")

    assert answer.status_code == 200
    assert run_slack_tasks() == [f"approval {approval.pk}: message updated (approved)"]
    assert slack.methods() == ["chat.postMessage", "chat.update"]
    message = shown(slack)
    assert buttons(message) == []
    assert outcome(message) == "Approved by carol (1 of 1)"
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED


def test_a_stop_shows_the_request_cancelled(email_waiting_for_approval, slack, user):
    turn, _approval = email_waiting_for_approval()
    run_slack_tasks()

    lifecycle.turn_request_cancel(session=turn.session, actor=user)
    run_slack_tasks()

    message = shown(slack)
    assert buttons(message) == []
    assert outcome(message) == "Cancelled: its turn was stopped before a decision"


def test_deleting_the_session_takes_the_buttons_away(email_waiting_for_approval, slack, user):
    turn, approval = email_waiting_for_approval()
    run_slack_tasks()

    sessions.session_delete(session=turn.session, actor=user)
    run_slack_tasks()

    message = shown(slack)
    assert buttons(message) == []
    assert f"send_email (request {approval.pk}, asked for by alice)" in section(message)
    assert "no longer needed" in section(message)


def test_a_request_of_a_group_shows_who_may_decide_nothing_more(
    email_waiting_for_approval, slack, people
):
    """The channel is one place for every approver: the message names the rule, and a press
    by someone outside the group decides nothing (tests/web/test_slack_interactions.py)."""
    board = Group.objects.create(name="board")
    people["dave"].groups.add(board)
    PolicyRule.objects.create(
        name="Mail needs the board",
        tool_name="send_email",
        outcome=Outcome.REQUIRE_APPROVAL,
        group=board,
    )
    _turn, approval = email_waiting_for_approval()

    run_slack_tasks()

    assert "Rule: Mail needs the board · needs 1 approver" in section(shown(slack))
    assert approval.group_id == board.pk


def test_slack_answering_500_never_touches_the_turn(
    email_waiting_for_approval, slack, people, settings, run_turn_in_thread
):
    settings.APPROVAL_WEBHOOK_ATTEMPTS = 3
    slack.fail_status = 500
    turn, approval = email_waiting_for_approval()

    [failure] = run_slack_tasks()

    assert isinstance(failure, SlackFailed)
    assert slack.methods() == ["chat.postMessage"] * 3
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert (approval.status, approval.slack_ts) == (ApprovalStatus.PENDING, "")

    # Decided elsewhere, the call runs; the message that never was is not updated.
    approval_services.approval_decide(approval_id=approval.pk, actor=people["carol"], approve=True)
    assert run_slack_tasks() == ["nothing to show"]
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED


def test_slack_refusing_connections_never_touches_the_turn(
    email_waiting_for_approval, people, settings, run_turn_in_thread
):
    settings.SLACK_BOT_TOKEN = "xoxb-test"
    settings.SLACK_SIGNING_SECRET = "secret"
    settings.SLACK_APPROVAL_CHANNEL = CHANNEL
    settings.APPROVAL_WEBHOOK_RETRY_DELAY = 0.01
    drop_queued_tasks()
    with socket.socket() as reserved:
        # Bound but not listening: every connection is refused.
        reserved.bind(("127.0.0.1", 0))
        settings.SLACK_API_URL = "http://{}:{}/api/".format(*reserved.getsockname())
        turn, approval = email_waiting_for_approval()

        [failure] = run_slack_tasks()

    assert isinstance(failure, SlackFailed)
    assert "after 4 attempts" in str(failure)
    turn.refresh_from_db()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    approval_services.approval_decide(approval_id=approval.pk, actor=people["carol"], approve=True)
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED


def test_nothing_goes_to_slack_when_it_is_not_set_up(email_waiting_for_approval, settings):
    settings.SLACK_BOT_TOKEN = "xoxb-test"
    settings.SLACK_SIGNING_SECRET = ""
    drop_queued_tasks()

    email_waiting_for_approval()

    assert run_slack_tasks() == []
