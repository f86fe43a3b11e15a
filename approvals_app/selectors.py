"""Which approval requests a person is shown: one rule for the API, the admin and every list.

A request restricted to a group (a policy rule's ``group``) is shown only to the group's members
and to superusers: its arguments are for those who may decide it. Lists leave out pending
requests past their deadline: nobody can decide them, and a read never writes; the scheduled
housekeeping (``services.approvals_expire``) marks them expired.
"""

from django.db.models import Q, QuerySet
from django.utils import timezone

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
