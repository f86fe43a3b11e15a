"""The turn state machine: every change of a turn's status is a ``move`` checked against
``ALLOWED_MOVES``, made with the session and turn rows locked, and told in the timeline in the
same transaction (``status_event``). Ending a turn (``finalize_locked``) and stopping one
(``cancel_locked``) live here too: every service that ends or stops a turn calls them."""

from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from agentproj import metrics
from agentproj.vocabulary import (
    CANCEL_REASON_MAX_LENGTH,
    INTERRUPT_TEXT,
    TERMINAL_STATUSES,
    USER_FACING_ERRORS,
    EventKind,
    StopReason,
    TurnStatus,
)
from sessions_app.core import broadcast, delivery, events, hooks, usage
from sessions_app.core.errors import IllegalTransition
from sessions_app.core.selectors import session_active_turn as active_turn
from sessions_app.models import AgentSession, TimelineEvent, Turn

S = TurnStatus


ALLOWED_MOVES: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.QUEUED, S.STOPPED}),
    S.QUEUED: frozenset({S.RUNNING, S.STOPPED, S.FAILED}),
    # running -> queued: the worker died or drained and the turn resumes from its checkpoint.
    # running -> stopped: the worker itself stops (its parent stopped, or a drain in stop mode).
    S.RUNNING: frozenset(
        {S.WAITING_FOR_APPROVAL, S.STOPPING, S.COMPLETED, S.FAILED, S.STOPPED, S.QUEUED}
    ),
    S.WAITING_FOR_APPROVAL: frozenset({S.QUEUED, S.STOPPED}),
    S.STOPPING: frozenset({S.STOPPED}),
    S.COMPLETED: frozenset(),
    S.STOPPED: frozenset(),
    S.FAILED: frozenset(),
}


def move(turn: Turn, to: str) -> None:
    if to not in ALLOWED_MOVES[turn.status]:
        raise IllegalTransition(f"{turn.status} -> {to}")
    turn.status = to


def status_data(turn: Turn, **extra: Any) -> dict[str, Any]:
    """What a status event of ``turn`` says: its status now, and why it ended if it did."""
    data = {"status": turn.status, "parent": turn.parent_id, **extra}
    if turn.stop_reason:
        data["stop_reason"] = turn.stop_reason
    if turn.error_code:
        data["error_code"] = turn.error_code
    return data


def status_event(session: AgentSession, turn: Turn, **extra: Any) -> TimelineEvent:
    return events.append(
        session=session, turn=turn, kind=EventKind.STATUS, data=status_data(turn, **extra)
    )


def enqueue_on_commit(turn: Turn) -> None:
    """Stamp the turn's ``enqueued_at`` and hand it to a worker once the transaction commits."""
    turn.enqueued_at = timezone.now()
    Turn.objects.filter(pk=turn.pk).update(enqueued_at=turn.enqueued_at)
    deliver_on_commit(turn)


def deliver_on_commit(turn: Turn) -> None:
    """Hand a turn whose ``enqueued_at`` is stamped to a worker once the transaction commits.

    ``robust``: a broker that is down must not turn a committed change into an error for the
    caller; the turn stays queued and housekeeping hands it over again (``turns_redeliver``).
    """
    turn_id = turn.pk

    def deliver() -> None:
        broadcast.send_held()
        delivery.turn_enqueue(turn_id)
        broadcast.offer_to_hosts(turn_id)

    transaction.on_commit(deliver, robust=True)


def _promote_next_pending(session: AgentSession) -> None:
    """Queue the turn that is next in line: the latest interrupting one, else the oldest."""
    if active_turn(session) is not None:
        return
    waiting = session.turns.filter(parent__isnull=True, status=S.PENDING)
    nxt = (
        waiting.filter(jumps_queue=True).order_by("-index").first()
        or waiting.order_by("index").first()
    )
    if nxt is None:
        return
    nxt = Turn.objects.select_for_update().get(pk=nxt.pk)
    move(nxt, S.QUEUED)
    nxt.save(update_fields=["status"])
    status_event(session, nxt)
    enqueue_on_commit(nxt)


def write_assistant_text(
    session: AgentSession,
    turn: Turn,
    event_id: int | None,
    data: dict[str, Any],
    html: str | None = None,
) -> TimelineEvent:
    """Write the message's text; final text gets its HTML (``html``, or rendered now)."""
    if event_id is None:
        return events.append(
            session=session, turn=turn, kind=EventKind.ASSISTANT_MESSAGE, data=data, html=html
        )
    event = TimelineEvent.objects.get(pk=event_id, turn=turn)
    if event.data != data:
        events.update(event=event, data=data, html=html)
    return event


def cancel_locked(
    session: AgentSession,
    turn: Turn,
    *,
    actor,
    reason: str,
    note: str = "",
    promote_next: bool = True,
) -> None:
    if turn.status == S.STOPPING:
        return
    if turn.status in (S.QUEUED, S.PENDING, S.WAITING_FOR_APPROVAL):
        finalize_locked(
            session,
            turn,
            status=S.STOPPED,
            stop_reason=reason,
            actor=actor,
            promote_next=promote_next,
        )
        return
    move(turn, S.STOPPING)
    turn.stop_reason = reason
    turn.cancel_requested_at = timezone.now()
    turn.cancel_requested_by = actor if getattr(actor, "pk", None) else None
    turn.save(update_fields=["status", "stop_reason", "cancel_requested_at", "cancel_requested_by"])
    status_event(session, turn, note=note[:CANCEL_REASON_MAX_LENGTH])
    broadcast.signal_turn_on_commit(turn)


def finalize_locked(
    session: AgentSession,
    turn: Turn,
    *,
    status: str,
    stop_reason: str = "",
    error_code: str = "",
    error_detail: str = "",
    actor=None,
    promote_next: bool = True,
) -> None:
    if turn.status == S.STOPPING:
        status, stop_reason, error_code = S.STOPPED, turn.stop_reason, ""
    if status == S.STOPPED and not stop_reason:
        stop_reason = StopReason.USER_CANCEL
    if turn.status in (S.QUEUED, S.PENDING, S.WAITING_FOR_APPROVAL) and status == S.STOPPED:
        turn.cancel_requested_at = turn.cancel_requested_at or timezone.now()
        if getattr(actor, "pk", None):
            turn.cancel_requested_by = actor
    move(turn, status)
    turn.stop_reason = stop_reason if status == S.STOPPED else ""
    turn.error_code = error_code if status == S.FAILED else ""
    turn.finished_at = timezone.now()
    turn.lease_token = None
    turn.worker_id = ""
    if turn.usage:
        # What its model calls cost, at the prices they were recorded with.
        turn.usage = {**turn.usage, **usage.turn_cost(turn.pk)}
    turn.save()
    _count_ending_on_commit(turn)

    # A streaming assistant message of this turn is no longer streaming.
    for event in turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE):
        if event.data.get("streaming"):
            events.update(event=event, data={**event.data, "streaming": False})

    hooks.approvals().requests_cancel(turn)

    for child in turn.children.exclude(status__in=TERMINAL_STATUSES):
        child = Turn.objects.select_for_update().get(pk=child.pk)
        finalize_locked(session, child, status=S.STOPPED, stop_reason=StopReason.PARENT_STOPPED)

    # The final status tells what the turn cost, for the line under it.
    ending: dict[str, Any] = {"usage": turn.usage} if turn.usage else {}
    if turn.started_at is not None:
        ending["duration_ms"] = round((turn.finished_at - turn.started_at).total_seconds() * 1000)
    if status == S.STOPPED:
        events.append(
            session=session,
            turn=turn,
            kind=EventKind.INTERRUPT,
            data={"reason": stop_reason, "text": INTERRUPT_TEXT[stop_reason]},
        )
    elif status == S.FAILED:
        ending["error"] = error_detail or USER_FACING_ERRORS.get(error_code, "")
        events.append(
            session=session,
            turn=turn,
            kind=EventKind.ERROR,
            data={"code": error_code, "text": ending["error"]},
        )
    status_event(session, turn, **ending)
    if turn.parent_id is None and promote_next:
        _promote_next_pending(session)


def _count_ending_on_commit(turn: Turn) -> None:
    """The turn's end, and how long its stop took once asked for, counted once they are
    committed: a transaction that rolls back ended nothing."""
    transaction.on_commit(metrics.TURNS_FINISHED.labels(turn.status).inc)
    if turn.status == S.STOPPED and turn.cancel_requested_at is not None:
        stopping = (turn.finished_at - turn.cancel_requested_at).total_seconds()
        transaction.on_commit(partial(metrics.CANCEL.observe, stopping))
