"""Presses of the Approve and Reject buttons in Slack, at POST /integrations/slack/interactions/:
signed as Slack signs them, decided through the same service as everywhere (groups, quorum,
four-eyes), and the message updated; anything else decides nothing.

The fake Slack Web API runs on loopback; the tasks a press queues are run here as a worker
would run them."""

import time

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from agentproj.vocabulary import TurnStatus
from approvals_app import services as approval_services
from approvals_app.models import ApprovalDecision, ApprovalStatus, Outcome, PolicyRule
from scripts.slack_fake import form_body, press_payload, signature_headers
from tests.slack_helpers import (
    SECRET,
    buttons,
    outcome,
    post_signed,
    run_slack_tasks,
    shown,
    signed_press,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def posted(email_waiting_for_approval, slack, people):
    """A parked turn whose request is in the channel; returns (turn, request)."""

    def post():
        turn, approval = email_waiting_for_approval()
        assert run_slack_tasks() == [f"approval {approval.pk}: message posted"]
        return turn, approval

    return post


def nothing_decided(turn, approval) -> None:
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert approval.status == ApprovalStatus.PENDING
    assert not ApprovalDecision.objects.filter(approval=approval).exists()


def ephemeral_texts(slack) -> list[str]:
    return [said["text"] for said in slack.ephemerals]


def test_it_approves_on_a_signed_press_by_a_mapped_approver(
    posted, slack, client, run_turn_in_thread
):
    turn, approval = posted()

    answer = signed_press(
        client, slack, user="U0CAROL", action_id=f"approval:{approval.pk}:approve"
    )

    assert (answer.status_code, answer.content) == (200, b"")
    assert run_slack_tasks() == [
        f"approval {approval.pk} approved by carol",
        f"approval {approval.pk}: message updated (approved)",
    ]
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by.username) == (ApprovalStatus.APPROVED, "carol")
    message = shown(slack)
    assert buttons(message) == []
    assert outcome(message) == "Approved by carol (1 of 1)"
    assert ephemeral_texts(slack) == []
    # Slack's address for carol differs in case from hers here; asked once.
    assert slack.methods().count("users.info") == 1
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED


def test_it_rejects_on_a_signed_press(posted, slack, client):
    turn, approval = posted()

    signed_press(client, slack, user="U0DAVE", action_id=f"approval:{approval.pk}:reject")
    run_slack_tasks()

    approval.refresh_from_db()
    assert (approval.status, approval.reason) == (ApprovalStatus.REJECTED, "rejected in Slack")
    assert outcome(shown(slack)) == "Rejected by dave: rejected in Slack"
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED


@pytest.mark.parametrize(
    "headers, code",
    [
        ({}, "slack_unsigned"),
        ({"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"}, "slack_unsigned"),
    ],
)
def test_an_unsigned_press_is_refused(posted, slack, client, headers, code):
    turn, approval = posted()
    body = form_body(
        press_payload(
            user="U0CAROL",
            action_id=f"approval:{approval.pk}:approve",
            response_url=slack.response_url(),
        )
    )

    answer = post_signed(client, body, headers=headers or {"X-Other": "1"})

    assert answer.status_code == 401
    assert answer.json()["code"] == code
    assert run_slack_tasks() == []
    nothing_decided(turn, approval)


def test_a_wrong_signature_or_a_stale_timestamp_is_refused(posted, slack, client):
    turn, approval = posted()
    action = f"approval:{approval.pk}:approve"

    wrong = signed_press(client, slack, user="U0CAROL", action_id=action, secret="not-it")
    stale = signed_press(
        client, slack, user="U0CAROL", action_id=action, timestamp=int(time.time()) - 6 * 60
    )
    body = form_body(
        press_payload(user="U0CAROL", action_id=action, response_url=slack.response_url())
    )
    headers = signature_headers(SECRET, body)
    tampered = post_signed(client, body.replace(b"U0CAROL", b"U0DAVE"), headers=headers)

    assert [(r.status_code, r.json()["code"]) for r in (wrong, stale, tampered)] == [
        (401, "slack_bad_signature"),
        (401, "slack_stale"),
        (401, "slack_bad_signature"),
    ]
    assert set(wrong.json()) == {"code", "detail"}
    assert run_slack_tasks() == []
    nothing_decided(turn, approval)
    assert slack.methods() == ["chat.postMessage"]


def test_a_replayed_press_is_refused(posted, slack, client):
    _turn, approval = posted()
    body = form_body(
        press_payload(
            user="U0CAROL",
            action_id=f"approval:{approval.pk}:reject",
            response_url=slack.response_url(),
        )
    )
    headers = signature_headers(SECRET, body)
    assert post_signed(client, body, headers=headers).status_code == 200
    run_slack_tasks()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.REJECTED

    again = post_signed(client, body, headers=headers)

    assert (again.status_code, again.json()["code"]) == (401, "slack_replayed")
    assert run_slack_tasks() == []
    assert ApprovalDecision.objects.filter(approval=approval).count() == 1


@pytest.mark.parametrize(
    "payload",
    [
        "{not json",
        '{"type": "block_actions"}',
        '{"type": "view_submission", "user": {"id": "U0CAROL"}}',
        "[" * 100 + "]" * 100,
    ],
)
def test_a_malformed_payload_is_refused(posted, slack, client, payload):
    turn, approval = posted()
    body = form_body(payload)

    answer = post_signed(client, body)

    assert (answer.status_code, answer.json()["code"]) == (400, "slack_malformed")
    assert run_slack_tasks() == []
    nothing_decided(turn, approval)


def test_an_unmapped_slack_user_decides_nothing_and_is_told_why(posted, slack, client):
    turn, approval = posted()

    for slack_user in ("U0STRANGER", "U0NOTINSLACK"):
        answer = signed_press(
            client, slack, user=slack_user, action_id=f"approval:{approval.pk}:approve"
        )
        assert answer.status_code == 200
    run_slack_tasks()

    nothing_decided(turn, approval)
    unmapped = "Your Slack account's e-mail address matches no agentproj approver"
    assert ephemeral_texts(slack) == [f"{unmapped}; nothing was decided."] * 2
    assert [said["response_type"] for said in slack.ephemerals] == ["ephemeral"] * 2
    assert slack.methods().count("chat.update") == 0


def test_an_ineligible_slack_user_decides_nothing_and_is_told_why(posted, slack, client, people):
    board = Group.objects.create(name="board")
    people["dave"].groups.add(board)
    PolicyRule.objects.create(
        name="Mail needs the board, and not the one who asked",
        tool_name="send_email",
        outcome=Outcome.REQUIRE_APPROVAL,
        group=board,
        allow_self_approval=False,
    )
    turn, approval = posted()

    for slack_user in ("U0BOB", "U0CAROL"):
        signed_press(client, slack, user=slack_user, action_id=f"approval:{approval.pk}:approve")
    run_slack_tasks()

    nothing_decided(turn, approval)
    assert ephemeral_texts(slack) == [
        "You may not decide approval requests; nothing was decided.",
        "Only members of the group the policy names may decide this request. Nothing was decided.",
    ]


def test_the_requester_may_not_approve_under_four_eyes(posted, slack, client):
    PolicyRule.objects.create(
        name="Someone else approves mail",
        tool_name="send_email",
        outcome=Outcome.REQUIRE_APPROVAL,
        allow_self_approval=False,
    )
    turn, approval = posted()

    signed_press(client, slack, user="U0ALICE", action_id=f"approval:{approval.pk}:approve")
    run_slack_tasks()

    nothing_decided(turn, approval)
    assert ephemeral_texts(slack) == [
        "The person who asked for this call may not approve it; another approver must. "
        "Nothing was decided."
    ]


def test_quorum_two_over_slack_and_the_api(posted, slack, client, people, run_turn_in_thread):
    PolicyRule.objects.create(
        name="Two approve outside mail",
        tool_name="send_email",
        outcome=Outcome.REQUIRE_APPROVAL,
        quorum=2,
    )
    turn, approval = posted()

    signed_press(client, slack, user="U0CAROL", action_id=f"approval:{approval.pk}:approve")
    run_slack_tasks()

    approval.refresh_from_db()
    assert (approval.status, approval.approvals_given) == (ApprovalStatus.PENDING, 1)
    message = shown(slack)
    assert outcome(message) == "Approved by carol (1 of 2), waiting for more"
    assert [label for label, _ in buttons(message)] == ["Approve", "Reject"]

    api = APIClient()
    api.force_authenticate(people["dave"])
    assert api.post(f"/api/approvals/{approval.pk}/approve/", {}, format="json").status_code == 200
    run_slack_tasks()

    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    message = shown(slack)
    assert outcome(message) == "Approved by carol, dave (2 of 2)"
    assert buttons(message) == []
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.COMPLETED


def test_a_press_on_a_decided_request_changes_nothing(posted, slack, client, people):
    _turn, approval = posted()
    approval_services.approval_decide(
        approval_id=approval.pk, actor=people["dave"], approve=False, reason="no"
    )
    run_slack_tasks()

    signed_press(client, slack, user="U0CAROL", action_id=f"approval:{approval.pk}:approve")
    run_slack_tasks()

    approval.refresh_from_db()
    assert (approval.status, approval.decided_by.username) == (ApprovalStatus.REJECTED, "dave")
    assert ApprovalDecision.objects.filter(approval=approval).count() == 1
    assert ephemeral_texts(slack) == [
        "This approval request has already been decided, cancelled or expired. Nothing was decided."
    ]


@pytest.mark.parametrize(
    "action",
    ["approval:{id}:approve-all", "approval:{id}", "other:{id}:approve", "approval:99999:approve"],
)
def test_an_unknown_action_or_request_changes_nothing(posted, slack, client, action):
    turn, approval = posted()

    answer = signed_press(client, slack, user="U0CAROL", action_id=action.format(id=approval.pk))
    run_slack_tasks()

    assert answer.status_code == 200
    nothing_decided(turn, approval)
    [said] = ephemeral_texts(slack)
    assert said.endswith("nothing was decided.")


def test_slack_not_set_up_answers_404(client, settings):
    settings.SLACK_BOT_TOKEN = ""
    body = form_body("{}")

    answer = post_signed(client, body)

    assert (answer.status_code, answer.json()["code"]) == (404, "not_found")
