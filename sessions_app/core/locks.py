"""Row locks, always taken in one order (the session, then its turn) so that two services never
deadlock, and the lease check that fences a worker's writes (DESIGN.md section 3, invariant 4)."""

from sessions_app.core.errors import LeaseLost
from sessions_app.models import AgentSession, Turn


def lock_turn(turn_id: int) -> tuple[AgentSession, Turn]:
    session_id = Turn.objects.values_list("session_id", flat=True).get(pk=turn_id)
    session = AgentSession.objects.select_for_update().get(pk=session_id)
    turn = Turn.objects.select_for_update().get(pk=turn_id)
    return session, turn


def lock_session(session_id) -> AgentSession:
    return AgentSession.objects.select_for_update().get(pk=session_id)


def lock_session_with_agent(session_id, *, owner_id: int | None = None) -> AgentSession:
    """``lock_session`` with its agent profile read in the same query (the profile not locked);
    with ``owner_id``, only a session of that user (``AgentSession.DoesNotExist`` otherwise)."""
    sessions = AgentSession.objects.select_related("agent").select_for_update(of=("self",))
    if owner_id is not None:
        sessions = sessions.filter(owner_id=owner_id)
    return sessions.get(pk=session_id)


def lock_turn_if_present(turn_id: int) -> tuple[AgentSession, Turn] | None:
    """``lock_turn``, or None when the turn was deleted with its session (scheduled work that
    found it a moment before)."""
    try:
        return lock_turn(turn_id)
    except (Turn.DoesNotExist, AgentSession.DoesNotExist):
        return None


def lock_worker_turn(turn_id: int) -> tuple[AgentSession, Turn]:
    """``lock_turn`` for a worker's write. A turn deleted with its session has no lease any
    more: its worker gets ``LeaseLost`` and lets the turn go, as when it was taken over."""
    locked = lock_turn_if_present(turn_id)
    if locked is None:
        raise LeaseLost()
    return locked


def require_lease(turn: Turn, lease_token) -> None:
    if lease_token is None or turn.lease_token is None or str(turn.lease_token) != str(lease_token):
        raise LeaseLost()
