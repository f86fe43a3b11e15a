"""Approvals in Slack (DESIGN.md section 5a): the one module that talks to Slack's Web API.

A new pending request is posted to ``SLACK_APPROVAL_CHANNEL`` with Approve and Reject buttons;
each decision on it, and its end, updates that message. Both happen in a django-q2 task
(``approvals_app.tasks.slack_sync``), never in a turn's worker loop, so Slack being slow or down
delays no turn and undoes no decision; failed calls are tried again like the webhook's. Button
presses come back through ``slack_interactions`` (the web view) and ``slack_presses``.
"""

import json
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient

from agentproj.vocabulary import EventKind
from approvals_app import notifications, records
from approvals_app.models import ApprovalRequest, ApprovalStatus, Decision
from sessions_app.models import TimelineEvent

logger = logging.getLogger(__name__)

APPROVE, REJECT = "approve", "reject"
# A button's action id names the request and the decision: "approval:<id>:approve".
ACTION_PREFIX = "approval"
ARGUMENTS_MAX_CHARS = 200
USER_CACHE_PREFIX = "slack-user-email:"


class SlackFailed(Exception):
    """Slack did not take a call (after retries where retrying helps)."""


def action_id(approval_id: int, decision: str) -> str:
    return f"{ACTION_PREFIX}:{approval_id}:{decision}"


def action_parsed(value: Any) -> tuple[int, bool] | None:
    """(request id, approve) of one of our buttons' action ids; None for anything else."""
    if not isinstance(value, str):
        return None
    prefix, _, rest = value.partition(":")
    number, _, decision = rest.partition(":")
    if prefix != ACTION_PREFIX or not number.isascii() or not number.isdigit():
        return None
    if decision not in (APPROVE, REJECT) or len(number) > 18:
        return None
    return int(number), decision == APPROVE


# The Web API


def client() -> WebClient:
    # No retry handlers of the SDK's own: ``call`` retries as the webhook does.
    return WebClient(
        token=settings.SLACK_BOT_TOKEN,
        base_url=settings.SLACK_API_URL.rstrip("/") + "/",
        timeout=settings.SLACK_TIMEOUT,
        retry_handlers=[],
    )


def call(method: str, **arguments: Any) -> SlackResponse:
    """Call one Web API method. A refused connection, a timeout, 429 or 5xx are tried again
    with the webhook's back-off (``APPROVAL_WEBHOOK_ATTEMPTS``, ``APPROVAL_WEBHOOK_RETRY_DELAY``);
    Slack's own refusal (``"ok": false``, e.g. ``channel_not_found``) will not change on
    retrying."""
    web = client()
    attempts = max(1, settings.APPROVAL_WEBHOOK_ATTEMPTS)
    for attempt in range(1, attempts + 1):
        try:
            return web.api_call(method, json=arguments)
        except SlackApiError as exc:
            status = exc.response.status_code
            problem = f"HTTP {status}: {exc.response.get('error', '')}"
            if status != 429 and status < 500:
                raise SlackFailed(f"{method}: {problem}") from None
        except OSError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if attempt < attempts:
            delay = settings.APPROVAL_WEBHOOK_RETRY_DELAY * 2 ** (attempt - 1)
            logger.warning("slack %s: %s; trying again in %.1fs", method, problem, delay)
            time.sleep(delay)
    raise SlackFailed(f"{method}: {problem} after {attempts} attempts")


def user_email(slack_user: str) -> str:
    """The e-mail address of a Slack user's profile (``users.info``, which needs the
    ``users:read.email`` scope), kept for ``SLACK_USER_CACHE_SECONDS``; "" when Slack has none."""
    key = USER_CACHE_PREFIX + slack_user
    email = cache.get(key)
    if email is None:
        web = client()
        try:
            answer = web.users_info(user=slack_user)
        except SlackApiError as exc:
            if exc.response.get("error") == "user_not_found":
                email = ""
            else:
                raise SlackFailed(f"users.info: HTTP {exc.response.status_code}") from None
        except OSError as exc:
            raise SlackFailed(f"users.info: {type(exc).__name__}: {exc}") from None
        else:
            email = ((answer.get("user") or {}).get("profile") or {}).get("email") or ""
        cache.set(key, email, settings.SLACK_USER_CACHE_SECONDS)
    return email


def ephemeral_send(*, text: str, response_url: str, channel: str, user: str) -> None:
    """Tell only the person who pressed a button why nothing happened: through the press's
    ``response_url`` (it needs no scope), else ``chat.postEphemeral``."""
    if response_url:
        answer = WebhookClient(response_url, timeout=settings.SLACK_TIMEOUT).send(
            text=text, response_type="ephemeral", replace_original=False
        )
        if answer.status_code != 200:
            raise SlackFailed(f"response_url: HTTP {answer.status_code}")
        return
    call("chat.postEphemeral", channel=channel, user=user, text=text)


# The message


def message_sync(*, approval_id: int) -> str:
    """Bring the request's Slack message in line with the request: post it while the request
    is pending and has none, else update it. Harmless to run twice: the update shows the same."""
    approval = (
        ApprovalRequest.objects.select_related("turn__session__owner", "decided_by")
        .filter(pk=approval_id)
        .first()
    )
    if approval is None or not notifications.slack_enabled():
        return "nothing to show"
    if approval.slack_ts:
        call(
            "chat.update", channel=approval.slack_channel, ts=approval.slack_ts, **message(approval)
        )
        return f"approval {approval_id}: message updated ({approval.status})"
    if not approval.is_pending:
        return "nothing to show"
    shown = message(approval)
    answer = call("chat.postMessage", channel=settings.SLACK_APPROVAL_CHANNEL, **shown)
    channel, ts = answer["channel"], answer["ts"]
    if not records.slack_message_record(approval_id=approval_id, channel=channel, ts=ts):
        # A task delivered twice, or a decision's update, posted first: one message is enough.
        call("chat.delete", channel=channel, ts=ts)
        return f"approval {approval_id}: posted already"
    # A decision committed while this message was on its way is shown now, not on the next one.
    approval.refresh_from_db()
    if message(approval) != shown:
        call("chat.update", channel=channel, ts=ts, **message(approval))
    return f"approval {approval_id}: message posted"


def message_replace(*, channel: str, ts: str, text: str) -> str:
    """Show ``text`` (Slack markup, escaped) instead of a message and its buttons."""
    if not notifications.slack_enabled():
        return "nothing to show"
    section = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    call("chat.update", channel=channel, ts=ts, text=text, blocks=[section])
    return f"message {ts} replaced"


def message(approval: ApprovalRequest) -> dict[str, Any]:
    """What the channel shows of a request: the call, who asked, the rule and the quorum, with
    the buttons while it waits and the outcome once it is decided or closed."""
    requester = approval.turn.session.owner.get_username()
    lines = [
        f"*{escape(approval.tool_name)}* (request {approval.pk}), asked for by {escape(requester)}",
        f"`{escape(arguments_summary(approval.arguments_to_run))}`",
        f"Rule: {escape(rule_name(approval))} · {quorum_text(approval)}",
    ]
    if approval.edited_arguments is not None:
        lines.append(f"Arguments edited by {escape(notifications.edited_by(approval) or '')}")
    outcome = outcome_text(approval)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}
    ]
    if approval.is_pending:
        blocks.append(decision_buttons(approval.pk))
    if outcome:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": outcome}]})
    head = notifications.mail_subject(approval)
    return {"text": f"{head}: {outcome}" if outcome else head, "blocks": blocks}


def decision_buttons(approval_id: int) -> dict[str, Any]:
    """Approve and Reject only: edited arguments and session grants need the request's page."""
    return {
        "type": "actions",
        "block_id": f"approval-{approval_id}",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": label},
                "action_id": action_id(approval_id, decision),
                "value": str(approval_id),
                "style": style,
            }
            for label, decision, style in (
                ("Approve", APPROVE, "primary"),
                ("Reject", REJECT, "danger"),
            )
        ],
    }


def arguments_summary(arguments: dict[str, Any]) -> str:
    """The arguments on one line, cut short: the full call is on the request's page."""
    text = json.dumps(arguments, sort_keys=True, ensure_ascii=False)
    text = " ".join(text.split())
    if len(text) > ARGUMENTS_MAX_CHARS:
        text = text[: ARGUMENTS_MAX_CHARS - 1] + "…"
    return text.replace("`", "'")


def rule_name(approval: ApprovalRequest) -> str:
    """The policy rule that asked for approval, as the timeline named it when the request was
    opened."""
    event = TimelineEvent.objects.filter(
        turn_id=approval.turn_id, kind=EventKind.APPROVAL_REQUESTED, data__approval=approval.pk
    ).first()
    policy = (event.data.get("policy") if event else None) or {}
    return policy.get("name") or "the tool's default"


def approvers(approval: ApprovalRequest) -> list[str]:
    """Who approved the arguments as they stand, in the order they did."""
    return [
        d.approver.get_username() if d.approver else "a deleted user"
        for d in approval.decisions.select_related("approver")
        if d.decision == Decision.APPROVE and d.arguments_hash == approval.arguments_hash
    ]


def quorum_text(approval: ApprovalRequest) -> str:
    needed = approval.approvals_needed
    return f"needs {needed} approver{'s' if needed > 1 else ''}"


def outcome_text(approval: ApprovalRequest) -> str:
    """ "Approved by carol (1 of 2)" while a quorum fills and once it is met; how a request
    ended otherwise; "" for a request nobody decided yet."""
    count = f"({approval.approvals_given} of {approval.approvals_needed})"
    names = escape(", ".join(approvers(approval)))
    if approval.status == ApprovalStatus.PENDING:
        return f"Approved by {names} {count}, waiting for more" if names else ""
    if approval.status == ApprovalStatus.APPROVED:
        return f"Approved by {names} {count}"
    if approval.status == ApprovalStatus.REJECTED:
        decider = approval.decided_by.get_username() if approval.decided_by else "someone"
        reason = f": {escape(approval.reason)}" if approval.reason else ""
        return f"Rejected by {escape(decider)}{reason}"
    if approval.status == ApprovalStatus.EXPIRED:
        return "Expired without a decision; its turn was stopped"
    return "Cancelled: its turn was stopped before a decision"


def escape(text: str) -> str:
    return notifications.slack_escape(text)
