"""The one module that sends anything over the channel layer.

Timeline events are rows (``TimelineEvent``) written inside the caller's transaction and
broadcast on commit. Token deltas are live-only. Control messages tell the worker running a turn
to look at it again (a cancel arrived).
"""

import hashlib
import logging
from typing import Any, Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from .models import AgentSession, TimelineEvent, Turn

logger = logging.getLogger(__name__)

EVENT_MESSAGE_TYPE = "timeline.event"
DELTA_MESSAGE_TYPE = "timeline.delta"
CONTROL_MESSAGE_TYPE = "turn.control"
APPROVAL_QUEUE_MESSAGE_TYPE = "approvals.changed"
APPROVAL_QUEUE_GROUP = "approvals"
LOGIN_ENDED_MESSAGE_TYPE = "login.ended"


class EventPayload(TypedDict):
    seq: int
    turn: int | None
    kind: str
    data: dict[str, Any]
    created_at: str


class DeltaPayload(TypedDict):
    seq: int
    turn: int
    offset: int
    text: str


class ControlPayload(TypedDict):
    type: str
    turn: int
    action: Literal["cancel"]


def session_group(session_id) -> str:
    return f"session.{session_id}"


def login_group(session_key: str) -> str:
    """The sockets opened with one login. Named by a hash: a session key is a credential."""
    return "login." + hashlib.sha256(session_key.encode()).hexdigest()[:40]


def turn_control_channel(turn_id: int) -> str:
    return f"turn-control.{turn_id}"


def serialize_event(event: TimelineEvent) -> EventPayload:
    return {
        "seq": event.seq,
        "turn": event.turn_id,
        "kind": event.kind,
        "data": event.data,
        "created_at": event.created_at.isoformat(),
    }


def append(
    *, session: AgentSession, turn: Turn | None, kind: str, data: dict[str, Any]
) -> TimelineEvent:
    """Write a timeline event and broadcast it once the transaction commits.

    The caller holds the session row's lock (services take it first), so ``last_seq`` only
    grows; the unique (session, seq) constraint backs that up.
    """
    session.last_seq += 1
    session.save(update_fields=["last_seq", "updated_at"])
    event = TimelineEvent.objects.create(
        session=session, turn=turn, seq=session.last_seq, kind=kind, data=data
    )
    _broadcast_on_commit(event)
    return event


def update(*, event: TimelineEvent, data: dict[str, Any]) -> TimelineEvent:
    """Replace an event's data in place (the growing assistant message) and re-broadcast it."""
    event.data = data
    event.save(update_fields=["data"])
    _broadcast_on_commit(event)
    return event


def _broadcast_on_commit(event: TimelineEvent) -> None:
    payload = serialize_event(event)
    group = session_group(event.session_id)
    transaction.on_commit(
        lambda: _send_now("group_send", group, {"type": EVENT_MESSAGE_TYPE, "event": payload})
    )


def _send_now(method: str, target: str, message: dict[str, Any]) -> None:
    # The row is committed and replayable; a lost live message only delays the page until its
    # next resume, so a channel-layer failure is logged rather than failing the caller.
    try:
        async_to_sync(getattr(get_channel_layer(), method))(target, message)
    except Exception:
        logger.exception("channel layer %s to %s failed", method, target)


async def send_delta(layer, *, session_id, payload: DeltaPayload) -> None:
    """Live-only token text; the persisted assistant event catches up at each checkpoint."""
    await layer.group_send(
        session_group(session_id), {"type": DELTA_MESSAGE_TYPE, "delta": payload}
    )


def signal_turn_on_commit(turn_id: int) -> None:
    """Ask the worker running ``turn_id`` to re-read it now rather than at its next poll."""
    message: ControlPayload = {"type": CONTROL_MESSAGE_TYPE, "turn": turn_id, "action": "cancel"}
    transaction.on_commit(lambda: _send_now("send", turn_control_channel(turn_id), message))


def approval_queue_changed_on_commit() -> None:
    """Tell open approval queues to refresh: a request was created, decided or withdrawn."""
    transaction.on_commit(
        lambda: _send_now("group_send", APPROVAL_QUEUE_GROUP, {"type": APPROVAL_QUEUE_MESSAGE_TYPE})
    )


def login_ended_on_commit(session_key: str) -> None:
    """Close the sockets opened with this login (it was logged out)."""
    group = login_group(session_key)
    transaction.on_commit(
        lambda: _send_now("group_send", group, {"type": LOGIN_ENDED_MESSAGE_TYPE})
    )
