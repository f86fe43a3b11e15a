"""Decisions on approval requests: the admin queue, the API and the chat page all come here."""

import hashlib
import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from sessions_app import events, services
from sessions_app.models import EventKind, StopReason, Turn, TurnStatus
from sessions_app.runtime import mcp, tools

from . import notifications
from .models import ApprovalDecision, ApprovalRequest, ApprovalStatus, Decision, SessionGrant


class NotPending(services.ServiceError):
    code = "not_pending"
    detail = "This approval request has already been decided, cancelled or expired."


class SelfApprovalForbidden(services.ServiceError):
    code = "self_approval_forbidden"
    detail = "The person who asked for this call may not approve it; another approver must."


class InvalidArguments(services.ServiceError):
    code = "invalid_arguments"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotEligible(services.ServiceError):
    code = "not_eligible"
    detail = "Only members of the group the policy names may decide this request."


class GrantNotAllowed(services.ServiceError):
    code = "grant_not_allowed"
    detail = "A request that needs several approvers cannot be approved for the whole session."


class InvalidGrant(services.ServiceError):
    code = "invalid_grant"
    detail = "A grant can only match arguments the approved call has."


class ArgumentsChanged(services.ServiceError):
    code = "arguments_changed"
    detail = "The tool call's arguments differ from the ones that were approved."


def arguments_hash(arguments: dict[str, Any]) -> str:
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def approval_event_data(approval: ApprovalRequest, **extra: Any) -> dict[str, Any]:
    """What the timeline says about an approval request (requested, then decided)."""
    return {
        "approval": approval.pk,
        "tool_call_id": approval.tool_call_id,
        "tool": approval.tool_name,
        **extra,
    }


def can_decide(user) -> bool:
    return bool(
        user
        and user.is_authenticated
        and (user.is_superuser or user.has_perm("approvals_app.decide_approvalrequest"))
    )


def approval_decide(
    *,
    approval_id: int,
    actor,
    approve: bool,
    reason: str = "",
    arguments: dict[str, Any] | None = None,
    grant: list[str] | None = None,
) -> ApprovalRequest:
    """Record one approver's decision on a pending request of a turn waiting for approval.

    A rejection rejects at once; approvals release the call when ``approvals_needed`` distinct
    approvers have given one (the same approver twice counts once). An approval may come with
    edited ``arguments``, checked against the tool's schema (``InvalidArguments``, nothing
    changes); the call then runs with those, and approvals of other arguments stop counting
    towards the quorum. With ``grant`` (argument names, possibly none) an approval of a
    single-approver request also approves later calls of the tool in the session whose
    arguments have the same values of those names. Takes the same session and
    turn locks as a cancel, so of a cancel and a decision arriving together exactly one wins;
    the loser gets ``NotPending``. When no request of the turn is pending any more the turn is
    queued and resumed from its checkpoint.
    """
    turn_id, tool_name = ApprovalRequest.objects.values_list("turn_id", "tool_name").get(
        pk=approval_id
    )
    if approve and arguments is not None:
        _check_arguments(tool_name, arguments)
    with transaction.atomic():
        session, turn = services.lock_turn(turn_id)
        approval = ApprovalRequest.objects.select_for_update().get(pk=approval_id)
        if not approval.is_pending or turn.status != TurnStatus.WAITING_FOR_APPROVAL:
            raise NotPending()
        overdue = approval.expires_at <= timezone.now()
        if overdue:
            # The expiry commits and the refusal comes after: raising in here would undo it.
            _expire_locked(session, turn)
            events.approval_queue_changed_on_commit()
        else:
            _decide_locked(
                session,
                turn,
                approval,
                actor=actor,
                approve=approve,
                reason=reason,
                arguments=arguments if approve else None,
                grant=grant if approve else None,
            )
    if overdue:
        raise NotPending()
    return approval


def _check_arguments(tool_name: str, arguments: dict[str, Any]) -> None:
    tool = tools.registry().get(tool_name) or mcp.cached_tool(tool_name)
    if tool is None:
        raise InvalidArguments(f"The tool {tool_name} is not available any more.")
    try:
        tool.validate(arguments)
    except tools.ToolError as exc:
        raise InvalidArguments(str(exc)) from None


def _decide_locked(
    session, turn: Turn, approval: ApprovalRequest, *, actor, approve, reason, arguments, grant
):
    if approval.group_id and not actor.groups.filter(pk=approval.group_id).exists():
        raise NotEligible()
    if approve and not approval.allow_self_approval and actor.pk == session.owner_id:
        raise SelfApprovalForbidden()
    if grant is not None:
        # A grant skips every later request: it may not stand in for several approvers.
        if approval.approvals_needed > 1:
            raise GrantNotAllowed()
        approved_arguments = approval.arguments_to_run if arguments is None else arguments
        if not set(grant) <= set(approved_arguments):
            raise InvalidGrant()
    reason = reason.strip()[:2000]
    edited = arguments is not None and arguments_hash(arguments) != approval.arguments_hash
    if edited:
        approval.edited_arguments = arguments
        approval.edited_by = actor
        approval.arguments_hash = arguments_hash(arguments)
        approval.save(update_fields=["edited_arguments", "edited_by", "arguments_hash"])
    decision = Decision.APPROVE if approve else Decision.REJECT
    approved_hash = approval.arguments_hash if approve else ""
    earlier = approval.decisions.filter(approver=actor).first()
    if earlier is not None and (earlier.decision, earlier.arguments_hash) == (
        decision,
        approved_hash,
    ):
        # A second click of the same approver: nothing new to count or to tell.
        return
    ApprovalDecision.objects.update_or_create(
        approval=approval,
        approver=actor,
        defaults={
            "decision": decision,
            "reason": reason,
            "arguments_hash": approved_hash,
            "edited_arguments": arguments if edited else None,
        },
    )
    given = approval.approvals_given
    if not approve or given >= approval.approvals_needed:
        approval.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        approval.decided_by = actor
        approval.decided_at = timezone.now()
        approval.reason = reason
        approval.save(update_fields=["status", "decided_by", "decided_at", "reason"])
        notifications.notify_on_commit(approval_id=approval.pk, status=approval.status)
    # The requested arguments stay in the approval_requested event; an edit is told here.
    told = {"edited_arguments": arguments, "edited_by": actor.get_username()} if edited else {}
    if grant is not None:
        granted = SessionGrant.objects.create(
            session=session,
            tool_name=approval.tool_name,
            match={name: approval.arguments_to_run[name] for name in grant},
            approval=approval,
            granted_by=actor,
        )
        told["grant"] = {"id": granted.pk, "match": granted.match}
    events.append(
        session=session,
        turn=turn,
        kind=EventKind.APPROVAL_DECIDED,
        data=approval_event_data(
            approval,
            decision=ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED,
            # Still "pending" while a quorum waits for more approvers.
            status=approval.status,
            approvals_given=given,
            approvals_needed=approval.approvals_needed,
            decided_by=actor.get_username(),
            reason=reason,
            **told,
        ),
    )
    services.turn_resume_after_decision(session=session, turn=turn)
    events.approval_queue_changed_on_commit()


def approval_claim_execution(
    *, approval_id: int, requested: dict[str, Any]
) -> dict[str, Any] | None:
    """Claim the right to run an approved call: the arguments to run it with, exactly once per
    approval (None for every later claim).

    ``requested`` are the call's arguments as the turn saved them: they must be the ones the
    approvers were shown. The call runs with the approved arguments, edited or not, and the
    claim holds only while they hash to what the approvers approved. A resume delivered twice
    finds the claim taken and does not run the tool again.
    """
    approval = ApprovalRequest.objects.get(pk=approval_id)
    if approval.status != ApprovalStatus.APPROVED:
        raise NotPending()
    if arguments_hash(requested) != arguments_hash(approval.arguments):
        raise ArgumentsChanged()
    to_run = approval.arguments_to_run
    claimed = ApprovalRequest.objects.filter(
        pk=approval_id,
        status=ApprovalStatus.APPROVED,
        arguments_hash=arguments_hash(to_run),
        executed_at__isnull=True,
    ).update(executed_at=timezone.now())
    return to_run if claimed == 1 else None


def grant_revoke(*, session_id, grant_id: int, actor) -> SessionGrant:
    """Stop a session grant from applying to later calls; revoking twice changes nothing."""
    with transaction.atomic():
        grant = SessionGrant.objects.select_for_update().get(pk=grant_id, session_id=session_id)
        if grant.revoked_at is None:
            grant.revoked_at = timezone.now()
            grant.revoked_by = actor
            grant.save(update_fields=["revoked_at", "revoked_by"])
    return grant


def _expire_locked(session, turn: Turn) -> None:
    pending = turn.approval_requests.filter(status=ApprovalStatus.PENDING)
    for approval_id in pending.values_list("pk", flat=True):
        notifications.notify_on_commit(approval_id=approval_id, status=ApprovalStatus.EXPIRED)
    pending.update(status=ApprovalStatus.EXPIRED, decided_at=timezone.now())
    services.finalize_locked(
        session, turn, status=TurnStatus.STOPPED, stop_reason=StopReason.APPROVAL_EXPIRED
    )


def approvals_expire() -> int:
    """Stop turns whose approval requests outlived ``expires_at`` (scheduled, and on access)."""
    now = timezone.now()
    turn_ids = set(
        ApprovalRequest.objects.filter(
            status=ApprovalStatus.PENDING, expires_at__lte=now
        ).values_list("turn_id", flat=True)
    )
    expired = 0
    for turn_id in turn_ids:
        with transaction.atomic():
            session, turn = services.lock_turn(turn_id)
            due = turn.approval_requests.filter(status=ApprovalStatus.PENDING, expires_at__lte=now)
            if turn.status != TurnStatus.WAITING_FOR_APPROVAL or not due.exists():
                continue
            _expire_locked(session, turn)
            events.approval_queue_changed_on_commit()
            expired += 1
    return expired
