"""Reads: what pages, the API and consumers show."""

from .events import serialize_event
from .models import ACTIVE_STATUSES, AgentSession, Turn, TurnStatus

SESSION_STATUS_OF_TURN = {
    TurnStatus.QUEUED: "running",
    TurnStatus.RUNNING: "running",
    TurnStatus.WAITING_FOR_APPROVAL: "waiting_for_approval",
    TurnStatus.STOPPING: "stopping",
}


def user_owns_session(user, session_id) -> bool:
    return AgentSession.objects.filter(pk=session_id, owner=user).exists()


def sessions_of(user):
    return AgentSession.objects.filter(owner=user).order_by("-created_at")


def session_active_turn(session: AgentSession) -> Turn | None:
    return session.turns.filter(parent__isnull=True, status__in=ACTIVE_STATUSES).first()


def session_status(active: Turn | None) -> str:
    """A session's status is derived from its active turn; it is never stored."""
    return SESSION_STATUS_OF_TURN[active.status] if active else "idle"


def events_after(session_id, after_seq: int, *, limit: int = 1000) -> list[dict]:
    rows = (
        AgentSession.objects.get(pk=session_id)
        .events.filter(seq__gt=after_seq)
        .order_by("seq")[:limit]
    )
    return [serialize_event(e) for e in rows]
