"""Decisions on approval requests: the admin queue, the API and the chat page all come here.

These services hold the session and turn locks (``sessions_app.core.locks.lock_turn``), have
``records`` write the approval rows and make the turn's move through ``sessions_app.core``
(``lifecycle`` and ``transitions``).
"""

from typing import Any

from django.db import transaction
from django.utils import timezone

from agentproj.vocabulary import StopReason, TurnStatus
from approvals_app import policies, records
from approvals_app.errors import InvalidArguments, NotPending
from approvals_app.models import ApprovalRequest, ApprovalStatus, SessionGrant
from sessions_app.core import lifecycle, locks, tool_catalog, transitions
from sessions_app.models import Turn


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
    edited ``arguments``, put in the tool's canonical form (``InvalidArguments``, nothing
    changes) and judged again by the policy as the edited call will run (``_edit_of``); the
    call then runs with those, and approvals of other arguments stop counting towards the
    quorum. With ``grant`` (argument names, possibly none) an approval of a single-approver
    request also approves later calls of the tool in the session whose arguments have the same
    values of those names. Takes the same session and turn locks as a cancel, so of a cancel
    and a decision arriving together exactly one wins; the loser gets ``NotPending``. When no
    request of the turn is pending any more the turn is queued and resumed from its checkpoint.
    """
    turn_id, tool_name = ApprovalRequest.objects.values_list("turn_id", "tool_name").get(
        pk=approval_id
    )
    tool = None
    if approve and arguments is not None:
        tool = _edited_tool(tool_name)
        arguments = _prepared_arguments(tool, arguments)
    with transaction.atomic():
        session, turn = locks.lock_turn(turn_id)
        approval = ApprovalRequest.objects.select_for_update().get(pk=approval_id)
        if not approval.is_pending or turn.status != TurnStatus.WAITING_FOR_APPROVAL:
            raise NotPending()
        overdue = approval.expires_at <= timezone.now()
        if overdue:
            # The expiry commits and the refusal comes after: raising in here would undo it.
            _expire_locked(session, turn)
        else:
            records.decision_record(
                session,
                turn,
                approval,
                actor=actor,
                approve=approve,
                reason=reason,
                edit=_edit_of(turn, approval, tool, arguments) if tool is not None else None,
                grant=grant if approve else None,
            )
            if not turn.approval_requests.filter(status=ApprovalStatus.PENDING).exists():
                lifecycle.turn_resume_after_decision(session=session, turn=turn)
    if overdue:
        raise NotPending()
    return approval


def _edited_tool(tool_name: str) -> tool_catalog.CatalogTool:
    """The tool whose call an approver edits: it puts the edit in canonical form, and its
    declaration (``needs_approval``) is the policy's default for the edited call."""
    tool = tool_catalog.tool_named(tool_name)
    if tool is None:
        raise InvalidArguments(f"The tool {tool_name} is not available any more.")
    return tool


def _prepared_arguments(
    tool: tool_catalog.CatalogTool, arguments: dict[str, Any]
) -> dict[str, Any]:
    """An approver's edited arguments in the tool's canonical form (``Tool.prepare``)."""
    try:
        return tool.prepare(arguments)
    except tool_catalog.ArgumentsRefused as exc:
        raise InvalidArguments(str(exc)) from None


def _edit_of(
    turn: Turn,
    approval: ApprovalRequest,
    tool: tool_catalog.CatalogTool,
    arguments: dict[str, Any],
) -> records.Edit | None:
    """The approver's edit with the policy's verdict on the call as edited, judged as the
    turn's loop judges a call (the turn's agent profile, the tool's declaration), so that
    editing a call cannot get past a rule that would have denied it or sent it to other
    approvers; None when the arguments are the ones that stand."""
    if records.arguments_hash(arguments) == approval.arguments_hash:
        return None
    verdict = policies.policy_verdict(
        tool_name=tool.name,
        needs_approval=tool.needs_approval,
        arguments=arguments,
        agent_id=turn.agent_snapshot.get("id"),
    )
    return records.Edit(arguments=arguments, verdict=verdict)


def grant_revoke(*, session_id, grant_id: int, actor) -> SessionGrant:
    """Stop a session grant from applying to later calls; revoking twice changes nothing."""
    with transaction.atomic():
        session = locks.lock_session(session_id)
        return records.grant_revoke(session, grant_id=grant_id, actor=actor)


def _expire_locked(session, turn: Turn) -> None:
    records.requests_close(turn, status=ApprovalStatus.EXPIRED)
    transitions.finalize_locked(
        session, turn, status=TurnStatus.STOPPED, stop_reason=StopReason.APPROVAL_EXPIRED
    )


def approvals_escalate() -> int:
    """Escalate the pending requests past their ``escalate_at`` (the scheduled housekeeping),
    each once: running twice escalates nothing twice."""
    now = timezone.now()
    due = ApprovalRequest.objects.filter(
        status=ApprovalStatus.PENDING,
        escalated_at__isnull=True,
        escalate_at__lte=now,
        expires_at__gt=now,
    ).values_list("pk", "turn_id")
    escalated = 0
    for approval_id, turn_id in due:
        with transaction.atomic():
            locked = locks.lock_turn_if_present(turn_id)
            if locked is None:
                continue
            session, turn = locked
            if turn.status != TurnStatus.WAITING_FOR_APPROVAL:
                continue
            escalated += records.request_escalate(session, turn, approval_id=approval_id)
    return escalated


def approvals_expire() -> int:
    """Stop turns whose approval requests outlived ``expires_at`` (the scheduled housekeeping;
    reads leave overdue requests out instead, ``selectors.approvals_listed_for``)."""
    now = timezone.now()
    turn_ids = set(
        ApprovalRequest.objects.filter(
            status=ApprovalStatus.PENDING, expires_at__lte=now
        ).values_list("turn_id", flat=True)
    )
    expired = 0
    for turn_id in turn_ids:
        with transaction.atomic():
            locked = locks.lock_turn_if_present(turn_id)
            if locked is None:
                continue
            session, turn = locked
            due = turn.approval_requests.filter(status=ApprovalStatus.PENDING, expires_at__lte=now)
            if turn.status != TurnStatus.WAITING_FOR_APPROVAL or not due.exists():
                continue
            _expire_locked(session, turn)
            expired += 1
    return expired
