"""Reads: what pages, the API, consumers and the worker's turn host look at."""

import uuid
from dataclasses import dataclass

from django.db.models import Count, OuterRef, Prefetch, Subquery
from django.db.models.functions import Left

from agentproj.vocabulary import ACTIVE_STATUSES, SESSION_STATUS_OF_TURN, EventKind
from sessions_app.core.events import EventPayload, serialize_event
from sessions_app.models import Agent, AgentSession, TimelineEvent, Turn


def user_owns_session(user, session_id) -> bool:
    return AgentSession.objects.filter(pk=session_id, owner=user).exists()


# Sessions on one page of the session list, and in one answer of GET /api/sessions/.
SESSIONS_PER_PAGE = 50


def sessions_of(user):
    return AgentSession.objects.filter(owner=user).select_related("agent").order_by("-created_at")


def sessions_with_active_turn(user):
    """``sessions_of`` with each session's active turn fetched in one more query for all of
    them (``active_turn_of``), whatever the number of sessions."""
    active = Turn.objects.filter(parent__isnull=True, status__in=ACTIVE_STATUSES)
    return sessions_of(user).prefetch_related(
        Prefetch("turns", queryset=active, to_attr="active_turns")
    )


# Characters of a session's latest message that the list reads for its one-line preview.
PREVIEW_CHARS = 160


def sessions_by_activity(user):
    """The user's sessions, the most recently active first, in one query whatever their
    number, each with the status of its active turn (``active_turn_status``, None when it has
    none) and the start of its latest message (``latest_message``, None before the first)."""
    turns = Turn.objects.filter(session=OuterRef("pk"), parent__isnull=True)
    active = turns.filter(status__in=ACTIVE_STATUSES).values("status")[:1]
    latest = turns.order_by("-index").values(start=Left("user_message", PREVIEW_CHARS))[:1]
    return (
        sessions_of(user)
        .annotate(active_turn_status=Subquery(active), latest_message=Subquery(latest))
        .order_by("-last_activity_at", "-created_at")
    )


def active_turn_of(session: AgentSession) -> Turn | None:
    """The active turn of a session from ``sessions_with_active_turn``."""
    return session.active_turns[0] if session.active_turns else None


def agents_to_pick():
    """The agent profiles a user may start a session with: all of them, by name."""
    return Agent.objects.order_by("name")


def agent_default() -> Agent | None:
    """The profile of a session created without a choice: the one marked default, else the
    first by name."""
    return Agent.objects.order_by("-is_default", "name").first()


def session_active_turn(session: AgentSession) -> Turn | None:
    return session.turns.filter(parent__isnull=True, status__in=ACTIVE_STATUSES).first()


def session_status(active: Turn | None) -> str:
    """A session's status is derived from its active turn; it is never stored."""
    return session_status_of_turn_status(active.status if active else None)


def session_status_of_turn_status(active_turn_status: str | None) -> str:
    """``session_status`` from the active turn's status alone (``sessions_by_activity``)."""
    return SESSION_STATUS_OF_TURN[active_turn_status] if active_turn_status else "idle"


def events_after(
    session_id,
    after_seq: int,
    *,
    limit: int | None = 1000,
    through_seq: int | None = None,
    kinds: tuple[str, ...] | None = None,
) -> list[dict]:
    """The session's events after ``after_seq`` in seq order, ``limit`` at most (None: all);
    only those up to ``through_seq`` and of ``kinds`` when given."""
    rows = AgentSession.objects.get(pk=session_id).events.filter(seq__gt=after_seq)
    if through_seq is not None:
        rows = rows.filter(seq__lte=through_seq)
    if kinds is not None:
        rows = rows.filter(kind__in=kinds)
    return [serialize_event(e) for e in rows.order_by("seq")[:limit]]


def events_of_turns(turn_ids, *, kinds: tuple[str, ...]) -> dict[int, list[EventPayload]]:
    """The events of ``kinds`` of each of the turns, in seq order, in one query."""
    rows = TimelineEvent.objects.filter(turn_id__in=turn_ids, kind__in=kinds).order_by("seq")
    by_turn: dict[int, list[EventPayload]] = {turn_id: [] for turn_id in turn_ids}
    for row in rows:
        by_turn[row.turn_id].append(serialize_event(row))
    return by_turn


@dataclass(frozen=True)
class LeaseState:
    status: str
    lease_token: uuid.UUID | None
    stop_reason: str


def turns_lease_state(turn_ids) -> dict[int, LeaseState]:
    """What a host needs to know of its turns at each look: one query for all of them."""
    rows = Turn.objects.filter(pk__in=list(turn_ids)).values_list(
        "pk", "status", "lease_token", "stop_reason"
    )
    return {pk: LeaseState(status, lease, reason) for pk, status, lease, reason in rows}


def turn_status(turn_id: int) -> str:
    return Turn.objects.values_list("status", flat=True).get(pk=turn_id)


def turn_stop_reason(turn_id: int) -> str:
    return Turn.objects.values_list("stop_reason", flat=True).get(pk=turn_id)


def turn_to_run(turn_id: int) -> Turn:
    return Turn.objects.select_related("session").get(pk=turn_id)


def turn_answer(turn_id: int) -> str:
    """The assistant text a turn produced, all of its model calls joined."""
    texts = Turn.objects.get(pk=turn_id).events.filter(kind=EventKind.ASSISTANT_MESSAGE)
    return "\n".join(t for t in (e.data.get("text", "") for e in texts) if t)


def turns_active_by_status() -> dict[str, int]:
    """How many turns (sub-agents' included) are in each active status now, zeros too."""
    counts = dict(
        Turn.objects.filter(status__in=ACTIVE_STATUSES)
        .values_list("status")
        .annotate(turns=Count("pk"))
        .order_by()
    )
    return {status: counts.get(status, 0) for status in ACTIVE_STATUSES}
