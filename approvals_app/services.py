"""Decisions on approval requests: the admin queue, the API and the chat page all come here.

These services hold the session and turn locks (``sessions_app.services.lock_turn``), have
``records`` write the approval rows and make the turn's move through ``sessions_app.services``.
"""

from typing import Any

from django.db import transaction
from django.utils import timezone

from sessions_app import services
from sessions_app.models import StopReason, Turn, TurnStatus
from sessions_app.runtime import mcp, tools

from . import records
from .errors import InvalidArguments, NotPending
from .models import ApprovalRequest, ApprovalStatus, SessionGrant


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
        arguments = _prepared_arguments(tool_name, arguments)
    with transaction.atomic():
        session, turn = services.lock_turn(turn_id)
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
                arguments=arguments if approve else None,
                grant=grant if approve else None,
            )
            services.turn_resume_after_decision(session=session, turn=turn)
    if overdue:
        raise NotPending()
    return approval


def _prepared_arguments(tool_name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """An approver's edited arguments in the tool's canonical form (``Tool.prepare``)."""
    tool = tools.registry().get(tool_name) or mcp.cached_tool(tool_name)
    if tool is None:
        raise InvalidArguments(f"The tool {tool_name} is not available any more.")
    try:
        return tool.prepare(arguments)
    except tools.ToolError as exc:
        raise InvalidArguments(str(exc)) from None


def grant_revoke(*, session_id, grant_id: int, actor) -> SessionGrant:
    """Stop a session grant from applying to later calls; revoking twice changes nothing."""
    with transaction.atomic():
        session = services.lock_session(session_id)
        return records.grant_revoke(session, grant_id=grant_id, actor=actor)


def _expire_locked(session, turn: Turn) -> None:
    records.requests_close(turn, status=ApprovalStatus.EXPIRED)
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
            locked = services.lock_turn_if_present(turn_id)
            if locked is None:
                continue
            session, turn = locked
            due = turn.approval_requests.filter(status=ApprovalStatus.PENDING, expires_at__lte=now)
            if turn.status != TurnStatus.WAITING_FOR_APPROVAL or not due.exists():
                continue
            _expire_locked(session, turn)
            expired += 1
    return expired
