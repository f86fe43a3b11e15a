"""A press of an Approve or Reject button in Slack, made a decision through the same service as
the admin queue, the API and the chat page (groups, quorum, four-eyes).

The web view (``slack_interactions``) has checked Slack's signature and answered Slack; this runs
in a django-q2 task (``approvals_app.tasks.slack_press``). A press that decides nothing is
answered with a short reason only its presser sees; a decision updates the message through the
request's notifications, wherever it was made.
"""

import logging
from typing import TypedDict

from django.contrib.auth import get_user_model

from agentproj.errors import ServiceError
from approvals_app import services
from approvals_app.integrations import slack
from approvals_app.models import ApprovalRequest

logger = logging.getLogger(__name__)

REJECT_REASON = "rejected in Slack"


class Press(TypedDict):
    """What the task needs of Slack's ``block_actions`` payload."""

    user: str
    action: str
    response_url: str
    channel: str


class Refused(Exception):
    """Why a press decides nothing, in words for the person who pressed."""


def press_handle(press: Press) -> str:
    """Decide as the press asks, or tell the presser why not; returns what happened."""
    try:
        outcome = press_decide(press)
    except Refused as refusal:
        slack.ephemeral_send(
            text=str(refusal),
            response_url=press["response_url"],
            channel=press["channel"],
            user=press["user"],
        )
        return f"refused: {refusal}"
    return outcome


def press_decide(press: Press) -> str:
    parsed = slack.action_parsed(press["action"])
    if parsed is None:
        raise Refused("This button is not one agentproj knows; nothing was decided.")
    approval_id, approve = parsed
    actor = app_user(press["user"])
    if not services.can_decide(actor):
        raise Refused("You may not decide approval requests; nothing was decided.")
    try:
        services.approval_decide(
            approval_id=approval_id,
            actor=actor,
            approve=approve,
            reason="" if approve else REJECT_REASON,
        )
    except ServiceError as refusal:
        raise Refused(f"{refusal.detail} Nothing was decided.") from None
    except ApprovalRequest.DoesNotExist:
        raise Refused(
            f"Request {approval_id} does not exist any more; nothing was decided."
        ) from None
    verb = "approved" if approve else "rejected"
    return f"approval {approval_id} {verb} by {actor.get_username()}"


def app_user(slack_user: str):
    """The active app user whose e-mail address is the Slack user's, compared without regard to
    case; refused when there is none, or more than one (nobody can tell which one pressed)."""
    try:
        email = slack.user_email(slack_user)
    except slack.SlackFailed:
        logger.exception("slack: users.info failed for %s", slack_user)
        raise Refused("Slack could not tell us who you are; try again later.") from None
    users = list(get_user_model().objects.filter(email__iexact=email, is_active=True)[:2])
    if not email or len(users) != 1:
        raise Refused(
            "Your Slack account's e-mail address matches no agentproj approver; "
            "nothing was decided."
        )
    return users[0]
