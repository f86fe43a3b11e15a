"""Which approval requests a person is shown: one rule for the API, the admin and every list.

A request restricted to a group (a policy rule's ``group``) is shown only to the group's members
and to superusers: its arguments are for those who may decide it. Lists leave out pending
requests past their deadline: nobody can decide them, and a read never writes; the scheduled
housekeeping (``services.approvals_expire``) marks them expired.
"""

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils import timezone

from agentproj.vocabulary import TurnStatus
from approvals_app.models import ApprovalRequest, ApprovalStatus

DECIDE_PERMISSION = "approvals_app.decide_approvalrequest"
# Where users' permissions live. Naming it is required (axes' backend is configured too), and
# it is the backend whose answer ``services.can_decide`` gets from ``user.has_perm``.
PERMISSION_BACKEND = "django.contrib.auth.backends.ModelBackend"


def approval_visibility(user, *, through: str = "") -> Q:
    """The requests ``user`` may see, as a filter; ``through`` is the path to the request from
    another model (``"approval__"`` for decisions and grants). An escalated request is shown to
    its escalation group too."""
    if user.is_superuser:
        return Q()
    groups = user.groups.values("pk")
    return (
        Q(**{f"{through}group__isnull": True})
        | Q(**{f"{through}group__in": groups})
        | Q(**{f"{through}escalated_at__isnull": False, f"{through}escalate_to__in": groups})
    )


def approvers_of(
    approval: ApprovalRequest, *, requester_id: int | None, ever: bool = False
) -> QuerySet:
    """The active users who may approve the request now (``ever``: now or once it escalates):
    holders of the permission (``services.can_decide``), members of its deciding groups
    where it has some, less the requester (when given) under four-eyes."""
    users = get_user_model().objects.with_perm(DECIDE_PERMISSION, backend=PERMISSION_BACKEND)
    groups = approval.deciding_group_ids(ever=ever)
    if groups:
        users = users.filter(groups__in=groups)
    if requester_id is not None and not approval.allow_self_approval:
        users = users.exclude(pk=requester_id)
    return users.distinct()


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
