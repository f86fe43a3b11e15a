"""The one module that writes ApprovalRequest, ApprovalDecision and SessionGrant rows.

It never moves a turn: ``sessions_app.services`` (parking a turn, stopping it) and
``approvals_app.services`` (decisions, expiry, revocation) take the session and turn locks, call
in here for the approval rows and their timeline events, and then make the turn's move. Imports
go one way: ``approvals_app.services`` -> ``sessions_app.services`` -> this module.
"""

import hashlib
import json
from datetime import datetime
from typing import Any

from django.utils import timezone

from sessions_app import events
from sessions_app.models import AgentSession, EventKind, Turn

from . import notifications
from .errors import (
    ArgumentsChanged,
    GrantNotAllowed,
    InvalidGrant,
    NotEligible,
    NotPending,
    SelfApprovalForbidden,
)
from .models import ApprovalDecision, ApprovalRequest, ApprovalStatus, Decision, SessionGrant


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


def requests_open(
    session: AgentSession, turn: Turn, *, calls: list[dict[str, Any]], expires_at: datetime
) -> None:
    """One pending request per call of a turn being parked, each told in the timeline and to
    its approvers. ``calls`` as ``sessions_app.services.turn_park_for_approval`` takes them."""
    for call in calls:
        approval = ApprovalRequest.objects.create(
            turn=turn,
            tool_call_id=call["id"],
            tool_name=call["name"],
            arguments=call["arguments"],
            arguments_hash=arguments_hash(call["arguments"]),
            approvals_needed=call.get("approvals_needed", 1),
            allow_self_approval=call.get("allow_self_approval", True),
            group_id=call.get("group"),
            expires_at=expires_at,
        )
        notifications.notify_on_commit(approval_id=approval.pk, status=ApprovalStatus.PENDING)
        events.append(
            session=session,
            turn=turn,
            kind=EventKind.APPROVAL_REQUESTED,
            data=approval_event_data(
                approval,
                arguments=approval.arguments,
                expires_at=expires_at.isoformat(),
                approvals_needed=approval.approvals_needed,
                **({"policy": call["policy"]} if "policy" in call else {}),
            ),
        )


def requests_close(turn: Turn, *, status: str) -> int:
    """End the turn's pending requests as ``cancelled`` (its turn stopped) or ``expired``, and
    tell the approvers who were asked that nothing is left to decide."""
    pending = turn.approval_requests.filter(status=ApprovalStatus.PENDING)
    approval_ids = list(pending.values_list("pk", flat=True))
    for approval_id in approval_ids:
        notifications.notify_on_commit(approval_id=approval_id, status=status)
    pending.update(status=status, decided_at=timezone.now())
    if approval_ids:
        events.approval_queue_changed_on_commit()
    return len(approval_ids)


def requests_withdraw(session: AgentSession) -> int:
    """Cancel the pending requests of a session about to be deleted, and tell their approvers
    as on a stop. The notices are read now: by the time they are sent, the rows are gone."""
    pending = ApprovalRequest.objects.filter(
        turn__session=session, status=ApprovalStatus.PENDING
    ).select_related("turn__session__owner", "decided_by")
    withdrawn = list(pending)
    for approval in withdrawn:
        approval.status = ApprovalStatus.CANCELLED
        approval.decided_at = timezone.now()
        approval.save(update_fields=["status", "decided_at"])
        notifications.notify_withdrawn_on_commit(approval)
    if withdrawn:
        events.approval_queue_changed_on_commit()
    return len(withdrawn)


def decision_record(
    session: AgentSession,
    turn: Turn,
    approval: ApprovalRequest,
    *,
    actor,
    approve: bool,
    reason: str,
    arguments: dict[str, Any] | None,
    grant: list[str] | None,
) -> None:
    """Record one approver's decision on a pending request, with the session and turn locked.

    Checked here, where the rows are locked: the approver's group, four-eyes and what a grant
    may match. An approval with ``arguments`` that differ from the request's binds the request
    to them; the request is decided once a rejection or ``approvals_needed`` distinct approvals
    of the same arguments are in. A second identical click records and tells nothing.
    """
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
    events.approval_queue_changed_on_commit()


def execution_claim(*, approval_id: int, requested: dict[str, Any]) -> dict[str, Any] | None:
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


def grant_revoke(session: AgentSession, *, grant_id: int, actor) -> SessionGrant:
    """Stop a grant of the (locked) session from applying to later calls, told in the session's
    timeline; revoking twice changes and tells nothing."""
    grant = SessionGrant.objects.select_for_update().get(pk=grant_id, session=session)
    if grant.revoked_at is not None:
        return grant
    grant.revoked_at = timezone.now()
    grant.revoked_by = actor
    grant.save(update_fields=["revoked_at", "revoked_by"])
    events.append(
        session=session,
        turn=None,
        kind=EventKind.APPROVAL_GRANT_REVOKED,
        data={
            "grant": grant.pk,
            "tool": grant.tool_name,
            "match": grant.match,
            "revoked_by": actor.get_username(),
        },
    )
    return grant
