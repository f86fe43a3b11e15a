"""Telling people about approval requests: e-mail to the approvers and a signed webhook.

Services only queue a notification (``notify_on_commit``); a django-q2 task sends it
(``approvals_app.tasks.notify``), never the turn's worker loop, so a slow or failing mail server
or webhook receiver delays no turn and undoes no decision. Delivery is at least once: a receiver
may see the same notice twice and can tell by the approval's ``id`` and ``status``.
"""

import hashlib
import hmac
import json
import logging
import time
from typing import Any, TypedDict

import httpx
from django.conf import settings
from django.core import mail
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django_q.tasks import async_task

from approvals_app import links, selectors
from approvals_app.models import ApprovalRequest, ApprovalStatus, Decision

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Agentproj-Signature"
# Arguments are shown in full in the e-mail and the JSON body; a chat message only needs a hint.
TEXT_ARGUMENTS_MAX_CHARS = 300


class WebhookFailed(Exception):
    """The webhook receiver did not accept the notice (after retries where retrying helps)."""


class NotificationFailed(Exception):
    """A channel failed. Raised after every channel was tried, so django-q2 keeps the failure
    where operators look for failed tasks."""


def notify_on_commit(
    *, approval_id: int, status: str, approver_ids: list[int] | None = None
) -> None:
    """Queue the notice that the approval is now ``status``, once the transaction commits;
    with ``approver_ids``, a pending request's notice to those approvers only (an escalation's
    new group), on every channel.

    ``robust``: a broker that is down loses the notice, never the committed change (a parked
    turn, a decision) that it was about.
    """
    only = {} if approver_ids is None else {"approver_ids": approver_ids}
    name = f"approval-{approval_id}-{status}" + ("-escalated" if only else "")
    transaction.on_commit(
        lambda: async_task(
            "approvals_app.tasks.notify",
            approval_id,
            status,
            **only,
            q_options={"task_name": name, "group": "notifications"},
        ),
        robust=True,
    )
    slack_sync_on_commit(approval_id=approval_id)


def slack_enabled() -> bool:
    return bool(settings.SLACK_BOT_TOKEN and settings.SLACK_SIGNING_SECRET)


def slack_sync_on_commit(*, approval_id: int) -> None:
    """Queue the Slack channel's task (``approvals_app.integrations.slack.message_sync``): it
    posts a new request's message or updates it to what the request is now. Its own task, so
    that Slack being slow or down delays neither the e-mails nor the webhook."""
    if not slack_enabled():
        return
    transaction.on_commit(
        lambda: async_task(
            "approvals_app.tasks.slack_sync",
            approval_id,
            q_options={"task_name": f"approval-{approval_id}-slack", "group": "notifications"},
        ),
        robust=True,
    )


def eligible_approvers(approval: ApprovalRequest) -> QuerySet:
    """Active users who may decide the request (``selectors.approvers_of``), except its
    requester."""
    requester_id = approval.turn.session.owner_id
    users = selectors.approvers_of(approval, requester_id=requester_id)
    return users.exclude(pk=requester_id).order_by("pk")


class Notice(TypedDict):
    """What one notification says, read from the database when it is built: the task that
    sends it needs no row, so a notice about a request deleted with its session still goes out."""

    approval: int
    status: str
    mails: list[dict[str, Any]]
    webhook: dict[str, Any] | None


def notice_of(approval: ApprovalRequest, *, approver_ids: list[int] | None = None) -> Notice:
    return {
        "approval": approval.pk,
        "status": approval.status,
        "mails": mail_notices(approval, approver_ids=approver_ids),
        "webhook": webhook_payload(approval) if settings.APPROVAL_WEBHOOK_URL else None,
    }


def notify_withdrawn_on_commit(approval: ApprovalRequest) -> None:
    """Queue the notice that a request was cancelled because its session is being deleted,
    built now, while the request can still be read."""
    notice = notice_of(approval)
    transaction.on_commit(
        lambda: async_task(
            "approvals_app.tasks.notify_prepared",
            notice,
            q_options={
                "task_name": f"approval-{notice['approval']}-{notice['status']}",
                "group": "notifications",
            },
        ),
        robust=True,
    )
    if approval.slack_ts and slack_enabled():
        # Its Slack message loses its buttons: nobody needs to press them any more.
        where, text = (approval.slack_channel, approval.slack_ts), slack_escape(summary(approval))
        transaction.on_commit(
            lambda: async_task(
                "approvals_app.tasks.slack_withdrawn",
                *where,
                text,
                q_options={"task_name": f"approval-{approval.pk}-slack", "group": "notifications"},
            ),
            robust=True,
        )


def approval_notify(*, approval_id: int, status: str, approver_ids: list[int] | None = None) -> str:
    """Tell the approvers (e-mail) and the webhook that the approval is now ``status``.

    A request that is no longer ``status`` (or is gone with its session) is not announced: a
    "waiting" notice that went out after the decision would send approvers to a request nobody
    needs to decide, and the decision's own notice says what is true.
    """
    approval = (
        ApprovalRequest.objects.select_related("turn__session__owner", "decided_by", "edited_by")
        .filter(pk=approval_id)
        .first()
    )
    if approval is None or approval.status != status:
        return "nothing to announce"
    return notice_send(notice_of(approval, approver_ids=approver_ids))


def notice_send(notice: Notice) -> str:
    approval_id, status = notice["approval"], notice["status"]
    failed = []
    try:
        mailed = send_mail_notices(notice["mails"])
    except OSError:
        logger.exception("approval %s: the %s e-mails were not sent", approval_id, status)
        failed.append("mail")
        mailed = 0
    if notice["webhook"] is not None:
        try:
            post_webhook(notice["webhook"])
        except WebhookFailed:
            logger.exception("approval %s: the %s webhook was not delivered", approval_id, status)
            failed.append("webhook")
    if failed:
        raise NotificationFailed(f"approval {approval_id} {status}: {', '.join(failed)} failed")
    return f"approval {approval_id} {status}: mailed {mailed}"


# E-mail


def mail_recipients_of(
    approval: ApprovalRequest, *, approver_ids: list[int] | None = None
) -> QuerySet:
    """Who was asked to decide hears how it ended too, so that nobody opens a request that is
    settled; the one who decided needs no e-mail about their own decision. The requester is not
    mailed: their session's timeline shows the decision as it happens. While the request waits,
    those who already approved it as it stands (an editor whose edit sent it to other
    approvers) are not asked again."""
    approvers = eligible_approvers(approval).exclude(email="")
    if approver_ids is not None:
        approvers = approvers.filter(pk__in=approver_ids)
    if approval.decided_by_id:
        approvers = approvers.exclude(pk=approval.decided_by_id)
    if approval.status == ApprovalStatus.PENDING:
        approved = approval.decisions.filter(
            decision=Decision.APPROVE,
            arguments_hash=approval.arguments_hash,
            # NOT IN a list holding NULL (an approver deleted since) would exclude everyone.
            approver__isnull=False,
        )
        approvers = approvers.exclude(pk__in=approved.values("approver"))
    return approvers


def mail_recipients(
    approval: ApprovalRequest, *, approver_ids: list[int] | None = None
) -> list[str]:
    return list(
        mail_recipients_of(approval, approver_ids=approver_ids).values_list("email", flat=True)
    )


def mail_notices(
    approval: ApprovalRequest, *, approver_ids: list[int] | None = None
) -> list[dict[str, Any]]:
    """One message per approver, so that no approver learns the others' addresses. While the
    request waits, each message holds its approver's own decision link (``links``)."""
    subject = mail_subject(approval)
    head = f"{summary(approval)}\n\n{details(approval)}\n\n"
    notices = []
    recipients = mail_recipients_of(approval, approver_ids=approver_ids)
    for approver_id, to in recipients.values_list("pk", "email"):
        if approval.status == ApprovalStatus.PENDING:
            opening = f"Approve or reject it: {links.link_for(approval, approver_id)}\n"
        else:
            opening = f"Open it: {approval_url(approval)}\n"
        notices.append({"subject": subject, "body": head + opening, "to": to})
    return notices


def send_mail_notices(notices: list[dict[str, Any]]) -> int:
    messages = [mail.EmailMessage(n["subject"], n["body"], to=[n["to"]]) for n in notices]
    if not messages:
        return 0
    return mail.get_connection().send_messages(messages)


def mail_subject(approval: ApprovalRequest) -> str:
    subjects = {
        ApprovalStatus.PENDING: "Approval needed",
        ApprovalStatus.APPROVED: "Approved",
        ApprovalStatus.REJECTED: "Rejected",
        ApprovalStatus.EXPIRED: "Expired",
        ApprovalStatus.CANCELLED: "Cancelled",
    }
    return f"{subjects[approval.status]}: {approval.tool_name} (request {approval.pk})"


# Texts


def approval_url(approval: ApprovalRequest) -> str:
    """The request's page in the admin queue, absolute: a worker knows no request's host."""
    path = reverse("admin:approvals_app_approvalrequest_change", args=[approval.pk])
    return settings.SITE_URL + path


def summary(approval: ApprovalRequest) -> str:
    requester = approval.turn.session.owner.get_username()
    what = f"{approval.tool_name} (request {approval.pk}, asked for by {requester})"
    if approval.status == ApprovalStatus.PENDING and approval.escalated_at is not None:
        return f"{what} is waiting for approval and was escalated to you."
    if approval.status == ApprovalStatus.PENDING:
        return f"{what} is waiting for approval."
    if approval.status == ApprovalStatus.EXPIRED:
        return f"{what} expired without a decision; its turn was stopped."
    if approval.status == ApprovalStatus.CANCELLED:
        return f"{what} is no longer needed: its turn was stopped before a decision."
    decider = approval.decided_by.get_username() if approval.decided_by else "someone"
    reason = f": {approval.reason}" if approval.reason else "."
    return f"{what} was {approval.status} by {decider}{reason}"


def edited_by(approval: ApprovalRequest) -> str | None:
    """Who changed the arguments the call runs with; None when it runs as requested."""
    if approval.edited_arguments is None:
        return None
    return approval.edited_by.get_username() if approval.edited_by else "an approver"


def details(approval: ApprovalRequest) -> str:
    """The arguments the call runs with (an approver's edit, when there is one), then those the
    model asked for if they differ, so that nobody approves or files what will not run."""
    editor = edited_by(approval)
    heading = "Arguments" if editor is None else f"Arguments, as edited by {editor}"
    lines = [f"{heading}:\n{pretty_arguments(approval.arguments_to_run)}"]
    if editor is not None:
        lines.append(f"Requested arguments:\n{pretty_arguments(approval.arguments)}")
    lines.append(f"Session: {approval.turn.session}")
    if approval.status == ApprovalStatus.PENDING:
        lines.append(f"Expires: {approval.expires_at.isoformat()}")
    return "\n".join(lines)


def pretty_arguments(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, indent=2, sort_keys=True, ensure_ascii=False)


def slack_text(approval: ApprovalRequest) -> str:
    arguments = json.dumps(approval.arguments_to_run, sort_keys=True, ensure_ascii=False)
    if len(arguments) > TEXT_ARGUMENTS_MAX_CHARS:
        arguments = arguments[: TEXT_ARGUMENTS_MAX_CHARS - 1] + "…"
    editor = edited_by(approval)
    edited = f" (arguments edited by {editor})" if editor is not None else ""
    quoted = slack_escape(f"{summary(approval)} `{arguments}`{edited}")
    return f"{quoted} <{approval_url(approval)}|Open request>"


def slack_escape(text: str) -> str:
    """Slack reads <…> as a link or a mention: arguments and reasons come from the model and
    from people, and must show as they are written, not as a link someone slipped in."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Webhook


def webhook_payload(approval: ApprovalRequest) -> dict[str, Any]:
    """The notice's JSON body: ``arguments`` are those the call runs with; when an approver
    changed them, ``requested_arguments`` are the model's and ``edited_by`` names the editor."""
    turn = approval.turn
    editor = edited_by(approval)
    requested = {"requested_arguments": approval.arguments} if editor is not None else {}
    return {
        "id": approval.pk,
        "status": approval.status,
        "tool": approval.tool_name,
        "arguments": approval.arguments_to_run,
        **requested,
        "edited_by": editor,
        "session": str(turn.session_id),
        "turn": turn.pk,
        "requested_by": turn.session.owner.get_username(),
        "decided_by": approval.decided_by.get_username() if approval.decided_by else None,
        "reason": approval.reason,
        "expires_at": approval.expires_at.isoformat(),
        "escalated_to": approval.escalate_to.name if approval.escalated_at else None,
        "url": approval_url(approval),
        "text": slack_text(approval),
    }


def signature(body: bytes) -> str:
    digest = hmac.new(settings.APPROVAL_WEBHOOK_SECRET.encode(), body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def post_webhook(payload: dict[str, Any]) -> int:
    """POST the payload to ``APPROVAL_WEBHOOK_URL``; returns the receiver's status code.

    Transport errors, 429 and 5xx are tried again with exponential back-off, up to
    ``APPROVAL_WEBHOOK_ATTEMPTS`` in all; any other answer will not change on retrying. Every
    attempt sends the same bytes, so the signature covers exactly what the receiver reads.
    """
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if settings.APPROVAL_WEBHOOK_SECRET:
        headers[SIGNATURE_HEADER] = signature(body)
    # Zero attempts would mean a notice that silently never goes out.
    attempts = max(1, settings.APPROVAL_WEBHOOK_ATTEMPTS)
    with httpx.Client(timeout=settings.APPROVAL_WEBHOOK_TIMEOUT) as client:
        for attempt in range(1, attempts + 1):
            try:
                response = client.post(settings.APPROVAL_WEBHOOK_URL, content=body, headers=headers)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return response.status_code
                problem = f"HTTP {response.status_code}"
                if response.status_code != 429 and not response.is_server_error:
                    raise WebhookFailed(problem)
            if attempt < attempts:
                delay = settings.APPROVAL_WEBHOOK_RETRY_DELAY * 2 ** (attempt - 1)
                logger.warning("approval webhook: %s; trying again in %.1fs", problem, delay)
                time.sleep(delay)
    raise WebhookFailed(f"{problem} after {attempts} attempts")
