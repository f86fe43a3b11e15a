"""The one module that writes ApprovalRequest, ApprovalDecision and SessionGrant rows.

It never moves a turn: the core's moves (parking a turn, stopping it, through the hooks in
``approvals_app.hooks``) and ``approvals_app.services`` (decisions, expiry, revocation) take the
session and turn locks, call in here for the approval rows and their timeline events, and then
make the turn's move. The core never imports this module; it reaches it only through the hooks.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from agentproj import metrics, tracing
from agentproj.vocabulary import DECISION_REASON_MAX_LENGTH, EventKind
from approvals_app import notifications, policies, selectors
from approvals_app.errors import (
    ArgumentsChanged,
    GrantNotAllowed,
    InvalidGrant,
    NotEligible,
    NotPending,
    PolicyDenied,
    SelfApprovalForbidden,
)
from approvals_app.models import (
    ApprovalDecision,
    ApprovalRequest,
    ApprovalStatus,
    Decision,
    Outcome,
    SessionGrant,
)
from approvals_app.policies import Verdict
from sessions_app.core import broadcast, events
from sessions_app.models import AgentSession, Turn


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
) -> int:
    """One request per call of a turn being parked, each told in the timeline; returns how many
    wait for a decision. ``calls`` as ``sessions_app.core.lifecycle.turn_park_for_approval``
    takes them.

    A request nobody could ever approve (``nobody_to_approve``) is rejected here, at once,
    naming its rule, and nobody is notified of it; the others are announced to their
    approvers."""
    waiting = 0
    for call in calls:
        policy = call.get("policy") or {}
        escalate_after = call.get("escalate_after")
        approval = ApprovalRequest(
            turn=turn,
            tool_call_id=call["id"],
            tool_name=call["name"],
            arguments=call["arguments"],
            arguments_hash=arguments_hash(call["arguments"]),
            approvals_needed=call.get("approvals_needed", 1),
            allow_self_approval=call.get("allow_self_approval", True),
            group_id=call.get("group"),
            expires_at=expires_at,
            rule_name=policy.get("name", ""),
        )
        if call.get("escalate_to") and escalate_after is not None:
            approval.escalate_to_id = call["escalate_to"]
            approval.escalate_at = timezone.now() + timedelta(seconds=escalate_after)
        refusal = nobody_to_approve(approval, requester_id=session.owner_id)
        if refusal:
            approval.status = ApprovalStatus.REJECTED
            approval.decided_at = timezone.now()
            approval.reason = refusal
        approval.save()
        if not refusal:
            waiting += 1
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
                # What the waiting user is told: who may decide and who was asked by e-mail.
                deciders=approval.group.name if approval.group_id else "",
                notified=len(notifications.mail_recipients(approval)) if not refusal else 0,
                **({"policy": policy} if policy else {}),
            ),
        )
        if refusal:
            _wait_ended_on_commit(
                approval, turn, outcome=approval.status, ended_at=approval.decided_at
            )
            events.append(
                session=session,
                turn=turn,
                kind=EventKind.APPROVAL_DECIDED,
                data=approval_event_data(
                    approval,
                    decision=ApprovalStatus.REJECTED,
                    status=approval.status,
                    approvals_given=0,
                    approvals_needed=approval.approvals_needed,
                    decided_by=None,
                    reason=refusal,
                    nobody_to_approve=True,
                ),
            )
    return waiting


def nobody_to_approve(approval: ApprovalRequest, *, requester_id: int) -> str:
    """Why nobody could ever approve the request (its reason, naming the rule), or "" when
    someone could: an active holder of the permission, of its group or of the group it would
    be escalated to, who is not the requester under four-eyes."""
    if selectors.approvers_of(approval, requester_id=requester_id, ever=True).exists():
        return ""
    group_ids = approval.deciding_group_ids(ever=True)
    names = sorted(Group.objects.filter(pk__in=group_ids).values_list("name", flat=True))
    where = " or ".join(f'the group "{name}"' for name in names)
    requester_only = (
        selectors.approvers_of(approval, requester_id=None, ever=True)
        .filter(pk=requester_id)
        .exists()
    )
    if requester_only:
        why = (
            "the only one who may approve it is the person who asked, and the rule does not "
            "let them approve their own call"
        )
    elif names:
        why = f"{where} has no active member who may approve tool calls"
    else:
        why = "no active user may approve tool calls"
    rule = approval.rule_name or policies.TOOL_DEFAULT
    return (
        f'Nobody can approve this call under the policy rule "{rule}": {why}. '
        "It was not sent for approval."
    )


def requests_close(turn: Turn, *, status: str) -> int:
    """End the turn's pending requests as ``cancelled`` (its turn stopped) or ``expired``, and
    tell the approvers who were asked that nothing is left to decide."""
    pending = turn.approval_requests.filter(status=ApprovalStatus.PENDING)
    requested = list(pending.only("pk", "created_at", "tool_name", "tool_call_id"))
    closed_at = timezone.now()
    for approval in requested:
        notifications.notify_on_commit(approval_id=approval.pk, status=status)
        _wait_ended_on_commit(approval, turn, outcome=status, ended_at=closed_at)
    pending.update(status=status, decided_at=closed_at)
    if requested:
        broadcast.approval_queue_changed_on_commit()
    return len(requested)


def requests_withdraw(session: AgentSession) -> int:
    """Cancel the pending requests of a session about to be deleted, and tell their approvers
    as on a stop. The notices are read now: by the time they are sent, the rows are gone."""
    pending = ApprovalRequest.objects.filter(
        turn__session=session, status=ApprovalStatus.PENDING
    ).select_related("turn__session__owner", "decided_by", "edited_by")
    withdrawn = list(pending)
    for approval in withdrawn:
        approval.status = ApprovalStatus.CANCELLED
        approval.decided_at = timezone.now()
        approval.save(update_fields=["status", "decided_at"])
        notifications.notify_withdrawn_on_commit(approval)
        _wait_ended_on_commit(
            approval, approval.turn, outcome=approval.status, ended_at=approval.decided_at
        )
    if withdrawn:
        broadcast.approval_queue_changed_on_commit()
    return len(withdrawn)


def _wait_ended_on_commit(
    approval: ApprovalRequest, turn: Turn, *, outcome: str, ended_at: datetime
) -> None:
    """How long a request waited for its outcome, counted once the outcome is committed, and
    the wait as an ``await_approval`` span in its turn's trace (linked to the trace of the
    request that decided it, if one records)."""
    waited = (ended_at - approval.created_at).total_seconds()
    transaction.on_commit(partial(metrics.APPROVAL_WAIT.labels(outcome).observe, waited))
    transaction.on_commit(
        partial(
            tracing.record_span,
            f"await_approval {approval.tool_name}",
            traceparent=turn.traceparent,
            start=approval.created_at,
            end=ended_at,
            attributes={
                tracing.TOOL_NAME: approval.tool_name,
                tracing.TOOL_CALL_ID: approval.tool_call_id,
                tracing.APPROVAL_OUTCOME: outcome,
                tracing.TURN_ID: turn.pk,
            },
            link_current=True,
        )
    )


@dataclass(frozen=True)
class Edit:
    """Arguments an approver changed, in the tool's canonical form, and the policy's verdict on
    the call with them."""

    arguments: dict[str, Any]
    verdict: Verdict


@dataclass(frozen=True)
class Needs:
    """What a request needs before its call may run: who may decide, and how many of them."""

    approvals_needed: int
    group_id: int | None
    allow_self_approval: bool
    # The group the request was escalated to, whose members may decide it too.
    escalated_to_id: int | None = None

    @classmethod
    def of(cls, approval: ApprovalRequest) -> "Needs":
        escalated_to = approval.escalate_to_id if approval.escalated_at is not None else None
        return cls(
            approval.approvals_needed,
            approval.group_id,
            approval.allow_self_approval,
            escalated_to,
        )

    def after_edit(self, verdict: Verdict) -> "Needs":
        """At least what the edited call's rule needs: its group governs where it names one,
        the larger quorum counts, and four-eyes holds if either asks for it. An edited call the
        policy would let run (``allow``) still needs what the request needed; one it denies
        may not be approved (``PolicyDenied``)."""
        if verdict.outcome == Outcome.DENY:
            raise PolicyDenied(verdict.rule_name)
        if verdict.outcome != Outcome.REQUIRE_APPROVAL:
            return self
        group_id = verdict.group_id or self.group_id
        return Needs(
            approvals_needed=max(self.approvals_needed, verdict.approvals_needed),
            group_id=group_id,
            allow_self_approval=self.allow_self_approval and verdict.allow_self_approval,
            # An escalation was to the request's group's stand-ins: another group governing
            # the edited call takes none of them along.
            escalated_to_id=self.escalated_to_id if group_id == self.group_id else None,
        )

    def check_may_decide(self, actor, *, requester_id: int, approve: bool) -> None:
        """``NotEligible`` outside the group; ``SelfApprovalForbidden`` for the requester's own
        approval under four-eyes (a requester may always reject their own request)."""
        groups = [g for g in (self.group_id, self.escalated_to_id) if g]
        if self.group_id and not actor.groups.filter(pk__in=groups).exists():
            raise NotEligible()
        if approve and not self.allow_self_approval and actor.pk == requester_id:
            raise SelfApprovalForbidden()


def decision_record(
    session: AgentSession,
    turn: Turn,
    approval: ApprovalRequest,
    *,
    actor,
    approve: bool,
    reason: str,
    edit: Edit | None,
    grant: list[str] | None,
) -> None:
    """Record one approver's decision on a pending request, with the session and turn locked.

    Checked here, where the rows are locked, before anything is written: that the approver may
    decide the request, and with an ``edit`` may approve the call as edited too; what a grant
    may match. An edit binds the request to its arguments and raises what the request needs to
    what the edited call's rule needs (``Needs.after_edit``). The request is decided once a
    rejection or ``approvals_needed`` distinct approvals of the same arguments are in. A second
    identical click records and tells nothing.
    """
    needs = Needs.of(approval)
    needs.check_may_decide(actor, requester_id=session.owner_id, approve=approve)
    if edit is not None:
        needs = needs.after_edit(edit.verdict)
        needs.check_may_decide(actor, requester_id=session.owner_id, approve=approve)
    if grant is not None:
        _check_grant(grant, needs, approval.arguments_to_run if edit is None else edit.arguments)
    reason = reason.strip()[:DECISION_REASON_MAX_LENGTH]
    regrouped = edit is not None and _edit_record(approval, edit, needs, actor=actor)
    if not _decision_save(approval, actor=actor, approve=approve, reason=reason, edit=edit):
        return
    if not approve or approval.approvals_given >= approval.approvals_needed:
        approval.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        approval.decided_by = actor
        approval.decided_at = timezone.now()
        approval.reason = reason
        approval.save(update_fields=["status", "decided_by", "decided_at", "reason"])
        notifications.notify_on_commit(approval_id=approval.pk, status=approval.status)
        _wait_ended_on_commit(approval, turn, outcome=approval.status, ended_at=approval.decided_at)
    elif regrouped:
        # Other people may decide it now: they hear of it as of a new request.
        notifications.notify_on_commit(approval_id=approval.pk, status=ApprovalStatus.PENDING)
    else:
        # A quorum under way: only the Slack message shows how far it has come.
        notifications.slack_sync_on_commit(approval_id=approval.pk)
    granted = None
    if grant is not None:
        granted = SessionGrant.objects.create(
            session=session,
            tool_name=approval.tool_name,
            match={name: approval.arguments_to_run[name] for name in grant},
            approval=approval,
            granted_by=actor,
        )
    _decision_tell(
        session,
        turn,
        approval,
        actor=actor,
        approve=approve,
        reason=reason,
        edit=edit,
        grant=granted,
    )


def _check_grant(grant: list[str], needs: Needs, approved_arguments: dict[str, Any]) -> None:
    # A grant skips every later request: it may not stand in for several approvers.
    if needs.approvals_needed > 1:
        raise GrantNotAllowed()
    if not set(grant) <= set(approved_arguments):
        raise InvalidGrant()


def _edit_record(approval: ApprovalRequest, edit: Edit, needs: Needs, *, actor) -> bool:
    """Bind the request to the edited arguments and to what it needs now; whether the people
    who may decide it changed (another group)."""
    regrouped = needs.group_id != approval.group_id
    if regrouped:
        verdict = edit.verdict
        approval.escalate_to_id = verdict.escalate_to_id
        approval.escalate_at = (
            timezone.now() + timedelta(seconds=verdict.escalate_after_seconds)
            if verdict.escalate_to_id and verdict.escalate_after_seconds is not None
            else None
        )
        if approval.escalate_at is None:
            approval.escalate_to_id = None
        approval.escalated_at = None
    if edit.verdict.requires_approval:
        approval.rule_name = edit.verdict.rule_name
    approval.edited_arguments = edit.arguments
    approval.edited_by = actor
    approval.arguments_hash = arguments_hash(edit.arguments)
    approval.approvals_needed = needs.approvals_needed
    approval.group_id = needs.group_id
    approval.allow_self_approval = needs.allow_self_approval
    approval.save(
        update_fields=[
            "edited_arguments",
            "edited_by",
            "arguments_hash",
            "approvals_needed",
            "group",
            "allow_self_approval",
            "escalate_to",
            "escalate_at",
            "escalated_at",
            "rule_name",
        ]
    )
    return regrouped


def _decision_save(
    approval: ApprovalRequest, *, actor, approve: bool, reason: str, edit: Edit | None
) -> bool:
    """Keep the approver's say on the request (one per approver, the latest); False when it is
    the one they already gave."""
    decision = Decision.APPROVE if approve else Decision.REJECT
    approved_hash = approval.arguments_hash if approve else ""
    earlier = approval.decisions.filter(approver=actor).first()
    if earlier is not None and (earlier.decision, earlier.arguments_hash) == (
        decision,
        approved_hash,
    ):
        return False
    ApprovalDecision.objects.update_or_create(
        approval=approval,
        approver=actor,
        defaults={
            "decision": decision,
            "reason": reason,
            "arguments_hash": approved_hash,
            "edited_arguments": edit.arguments if edit is not None else None,
        },
    )
    return True


def _decision_tell(
    session: AgentSession,
    turn: Turn,
    approval: ApprovalRequest,
    *,
    actor,
    approve: bool,
    reason: str,
    edit: Edit | None,
    grant: SessionGrant | None,
) -> None:
    """The approval_decided event. The requested arguments stay in the approval_requested
    event; an edit is told here, with the rule that judged the edited call and what the request
    needs since."""
    told: dict[str, Any] = {}
    if edit is not None:
        told = {
            "edited_arguments": edit.arguments,
            "edited_by": actor.get_username(),
            "policy": edit.verdict.as_event_data(),
            "group": approval.group.name if approval.group_id else None,
            "allow_self_approval": approval.allow_self_approval,
        }
    if grant is not None:
        told["grant"] = {"id": grant.pk, "match": grant.match}
    events.append(
        session=session,
        turn=turn,
        kind=EventKind.APPROVAL_DECIDED,
        data=approval_event_data(
            approval,
            decision=ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED,
            # Still "pending" while a quorum waits for more approvers.
            status=approval.status,
            approvals_given=approval.approvals_given,
            approvals_needed=approval.approvals_needed,
            decided_by=actor.get_username(),
            reason=reason,
            **told,
        ),
    )
    broadcast.approval_queue_changed_on_commit()


def request_escalate(session: AgentSession, turn: Turn, *, approval_id: int) -> bool:
    """Escalate a pending request whose ``escalate_at`` has passed, with its session and turn
    locked: its escalation group may decide it from now on, is told like of a new request, and
    the timeline says so. Once per request: False when it is escalated, decided or not due."""
    now = timezone.now()
    escalated = ApprovalRequest.objects.filter(
        pk=approval_id,
        status=ApprovalStatus.PENDING,
        escalated_at__isnull=True,
        escalate_at__lte=now,
        expires_at__gt=now,
    ).update(escalated_at=now)
    if not escalated:
        return False
    approval = ApprovalRequest.objects.select_related("escalate_to").get(pk=approval_id)
    told = selectors.approvers_of(approval, requester_id=session.owner_id).filter(
        groups=approval.escalate_to_id
    )
    notifications.notify_on_commit(
        approval_id=approval.pk,
        status=ApprovalStatus.PENDING,
        approver_ids=list(told.values_list("pk", flat=True)),
    )
    events.append(
        session=session,
        turn=turn,
        kind=EventKind.APPROVAL_ESCALATED,
        data=approval_event_data(approval, escalated_to=approval.escalate_to.name),
    )
    broadcast.approval_queue_changed_on_commit()
    return True


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


def execution_record(*, approval_id: int, result_sha256: str) -> bool:
    """Record the hash of the tool result text the model received for a claimed approved call:
    with it, the call has run and has a receipt. Once: False when it was recorded already."""
    return bool(
        ApprovalRequest.objects.filter(
            pk=approval_id,
            status=ApprovalStatus.APPROVED,
            executed_at__isnull=False,
            result_sha256="",
        ).update(result_sha256=result_sha256)
    )


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


def slack_message_record(*, approval_id: int, channel: str, ts: str) -> bool:
    """Keep where the request's Slack message is; False when another task posted one first."""
    return (
        ApprovalRequest.objects.filter(pk=approval_id, slack_ts="").update(
            slack_channel=channel, slack_ts=ts
        )
        == 1
    )
