"""Which approval requests a person is shown: one rule for the API, the admin and every list.

A request restricted to a group (a policy rule's ``group``) is shown only to the group's members
and to superusers: its arguments are for those who may decide it. Lists leave out pending
requests past their deadline: nobody can decide them, and a read never writes; the scheduled
housekeeping (``services.approvals_expire``) marks them expired.
"""

from django.db.models import Q, QuerySet
from django.utils import timezone

from agentproj.vocabulary import TurnStatus
from approvals_app.models import ApprovalRequest, ApprovalStatus


def approval_visibility(user, *, through: str = "") -> Q:
    """The requests ``user`` may see, as a filter; ``through`` is the path to the request from
    another model (``"approval__"`` for decisions and grants)."""
    if user.is_superuser:
        return Q()
    return Q(**{f"{through}group__isnull": True}) | Q(
        **{f"{through}group__in": user.groups.values("pk")}
    )


def not_overdue() -> Q:
    """Every request but the pending ones past ``expires_at``."""
    return ~Q(status=ApprovalStatus.PENDING, expires_at__lte=timezone.now())


def approvals_visible_to(user) -> QuerySet[ApprovalRequest]:
    """The requests ``user`` may open, overdue ones included (their page says they can no
    longer be decided)."""
    return ApprovalRequest.objects.filter(approval_visibility(user))


def approvals_listed_for(user) -> QuerySet[ApprovalRequest]:
    """The requests a list shows ``user``: those they may see, less the overdue pending ones."""
    return approvals_visible_to(user).filter(not_overdue())


def turn_approvals_by_call(turn_id: int) -> dict[str, ApprovalRequest]:
    requests = ApprovalRequest.objects.filter(turn_id=turn_id).select_related(
        "decided_by", "edited_by"
    )
    return {request.tool_call_id: request for request in requests}


def approvals_decidable_by(user) -> QuerySet[ApprovalRequest]:
    """The requests ``user`` may decide now, as the inbox lists them: pending, not overdue,
    their turn still waiting, and shown to them (``approval_visibility``). Whether ``user`` is
    an approver at all is the caller's question (``services.can_decide``)."""
    return approvals_listed_for(user).filter(
        status=ApprovalStatus.PENDING, turn__status=TurnStatus.WAITING_FOR_APPROVAL
    )


def approval_behind_session(user, session_id) -> ApprovalRequest | None:
    """A request of the session that ``user`` may decide now or has decided, if any: what lets
    an approver read a conversation that is not theirs (read-only)."""
    decided = Q(decisions__approver=user) | Q(decided_by=user)
    pending = Q(status=ApprovalStatus.PENDING) & not_overdue()
    return (
        approvals_visible_to(user)
        .filter(turn__session_id=session_id)
        .filter(pending | decided)
        .order_by("-created_at", "-pk")
        .first()
    )
