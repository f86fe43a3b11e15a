"""Decisions on approval requests: the admin queue, the API and the chat page all come here."""

import hashlib
import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from sessions_app import events, services
from sessions_app.models import EventKind, StopReason, Turn, TurnStatus

from .models import ApprovalDecision, ApprovalRequest, ApprovalStatus, Decision


class NotPending(services.ServiceError):
    code = "not_pending"
    detail = "This approval request has already been decided, cancelled or expired."


class SelfApprovalForbidden(services.ServiceError):
    code = "self_approval_forbidden"
    detail = "The person who asked for this call may not approve it; another approver must."


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


def approval_decide(*, approval_id: int, actor, approve: bool, reason: str = "") -> ApprovalRequest:
    """Record one approver's decision on a pending request of a turn waiting for approval.

    A rejection rejects at once; approvals release the call when ``approvals_needed`` distinct
    approvers have given one (the same approver twice counts once). Takes the same session and
    turn locks as a cancel, so of a cancel and a decision arriving together exactly one wins;
    the loser gets ``NotPending``. When no request of the turn is pending any more the turn is
    queued and resumed from its checkpoint.
    """
    turn_id = ApprovalRequest.objects.values_list("turn_id", flat=True).get(pk=approval_id)
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
            _decide_locked(session, turn, approval, actor=actor, approve=approve, reason=reason)
    if overdue:
        raise NotPending()
    return approval


def _decide_locked(session, turn: Turn, approval: ApprovalRequest, *, actor, approve, reason):
    if approve and not approval.allow_self_approval and actor.pk == session.owner_id:
        raise SelfApprovalForbidden()
    reason = reason.strip()[:2000]
    decision = Decision.APPROVE if approve else Decision.REJECT
    earlier = approval.decisions.filter(approver=actor).first()
    if earlier is not None and earlier.decision == decision:
        # A second click of the same approver: nothing new to count or to tell.
        return
    ApprovalDecision.objects.update_or_create(
        approval=approval, approver=actor, defaults={"decision": decision, "reason": reason}
    )
    given = approval.approvals_given
    if not approve or given >= approval.approvals_needed:
        approval.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        approval.decided_by = actor
        approval.decided_at = timezone.now()
        approval.reason = reason
        approval.save(update_fields=["status", "decided_by", "decided_at", "reason"])
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
        ),
    )
    services.turn_resume_after_decision(session=session, turn=turn)
    events.approval_queue_changed_on_commit()


def approval_claim_execution(*, approval_id: int, arguments: dict[str, Any]) -> bool:
    """Claim the right to run an approved call. True exactly once per approval.

    The arguments must hash to what the approver saw; a resume delivered twice finds the claim
    taken and does not run the tool again.
    """
    approval = ApprovalRequest.objects.get(pk=approval_id)
    if approval.status != ApprovalStatus.APPROVED:
        raise NotPending()
    if arguments_hash(arguments) != approval.arguments_hash:
        raise ArgumentsChanged()
    claimed = ApprovalRequest.objects.filter(
        pk=approval_id, status=ApprovalStatus.APPROVED, executed_at__isnull=True
    ).update(executed_at=timezone.now())
    return claimed == 1


def _expire_locked(session, turn: Turn) -> None:
    turn.approval_requests.filter(status=ApprovalStatus.PENDING).update(
        status=ApprovalStatus.EXPIRED, decided_at=timezone.now()
    )
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
