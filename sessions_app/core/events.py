"""Timeline rows: every event a session's timeline shows is written here, inside the caller's
transaction (the session row locked, so ``seq`` only grows), and broadcast once it commits."""

from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

from django.db import transaction
from django.utils import timezone

from agentproj.vocabulary import EVENT_MESSAGE_TYPE, EventKind
from sessions_app.core import rendering
from sessions_app.core.broadcast import send_now, session_group, sessions_changed_on_commit
from sessions_app.models import AgentSession, TimelineEvent, Turn


class EventPayload(TypedDict):
    seq: int
    turn: int | None
    kind: str
    data: dict[str, Any]
    created_at: str
    # An assistant message's text as sanitised HTML, once it no longer streams.
    html: NotRequired[str]


def serialize_event(event: TimelineEvent) -> EventPayload:
    payload: EventPayload = {
        "seq": event.seq,
        "turn": event.turn_id,
        "kind": event.kind,
        "data": event.data,
        "created_at": event.created_at.isoformat(),
    }
    # Stored when the text became final (``stored_html``): a read never renders.
    if event.html is not None:
        payload["html"] = event.html
    return payload


def stored_html(kind: str, data: dict[str, Any], rendered: str | None = None) -> str | None:
    """The HTML an event keeps: an assistant message's, once its text is final (``rendered``
    when the caller rendered that text already, outside its transaction). A streaming message
    has none: its checkpoints would cost a render each, and deltas append raw text anyway."""
    if kind != EventKind.ASSISTANT_MESSAGE or data.get("streaming"):
        return None
    if rendered is not None:
        return rendered
    return rendering.assistant_html(str(data.get("text") or ""))


def append(
    *,
    session: AgentSession,
    turn: Turn | None,
    kind: str,
    data: dict[str, Any],
    html: str | None = None,
) -> TimelineEvent:
    """Write a timeline event and broadcast it once the transaction commits (``html``: see
    ``stored_html``).

    The caller holds the session row's lock (services take it first), so ``last_seq`` only
    grows; the unique (session, seq) constraint backs that up.
    """
    session.last_seq += 1
    session.last_activity_at = timezone.now()
    session.save(update_fields=["last_seq", "last_activity_at", "updated_at"])
    event = TimelineEvent.objects.create(
        session=session,
        turn=turn,
        seq=session.last_seq,
        kind=kind,
        data=data,
        html=stored_html(kind, data, html),
    )
    _broadcast_written(session, [event])
    return event


def append_many(
    *,
    session: AgentSession,
    turn: Turn,
    entries: Sequence[tuple[str, dict[str, Any]]],
    session_fields: Sequence[str] = (),
) -> None:
    """``append`` for the events of one move, in one write of the session row (with the other
    ``session_fields`` the caller changed) and one of the events: a sent message's path."""
    first_seq = session.last_seq + 1
    session.last_seq += len(entries)
    session.last_activity_at = timezone.now()
    session.save(update_fields=["last_seq", "last_activity_at", "updated_at", *session_fields])
    written = TimelineEvent.objects.bulk_create(
        TimelineEvent(
            session=session,
            turn=turn,
            seq=first_seq + offset,
            kind=kind,
            data=data,
            html=stored_html(kind, data),
        )
        for offset, (kind, data) in enumerate(entries)
    )
    _broadcast_written(session, written)


def _broadcast_written(session: AgentSession, written: Sequence[TimelineEvent]) -> None:
    for event in written:
        _broadcast_on_commit(event)
    if any(event.kind == EventKind.STATUS for event in written):
        # A turn's status is the session's status on its owner's list.
        sessions_changed_on_commit(session)


def update(*, event: TimelineEvent, data: dict[str, Any], html: str | None = None) -> TimelineEvent:
    """Replace an event's data in place (the growing assistant message) and re-broadcast it
    (``html``: see ``stored_html``)."""
    event.data = data
    event.html = stored_html(event.kind, data, html)
    event.save(update_fields=["data", "html"])
    _broadcast_on_commit(event)
    return event


def _broadcast_on_commit(event: TimelineEvent) -> None:
    payload = serialize_event(event)
    group = session_group(event.session_id)
    transaction.on_commit(
        lambda: send_now("group_send", group, {"type": EVENT_MESSAGE_TYPE, "event": payload})
    )
