"""Every change of a turn's status happens here.

Each service locks the session row and then the turn row (always in that order, so two services
never deadlock), checks the move against ``ALLOWED_MOVES``, writes the timeline events of the
change in the same transaction and leaves broadcasting and task enqueueing to ``on_commit``.
"""

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from agentproj.errors import ServiceError
from agentproj.validators import FORBIDDEN, NOT_FOR_READERS, TITLE_MAX_LENGTH, one_line_text
from approvals_app import records as approval_records
from approvals_app.models import ApprovalStatus

from . import delivery, events, rendering
from .agents import agent_snapshot
from .models import (
    TERMINAL_STATUSES,
    Agent,
    AgentSession,
    ErrorCode,
    EventKind,
    StopReason,
    TimelineEvent,
    Turn,
    TurnStatus,
)
from .selectors import agent_default, user_active_turns
from .selectors import session_active_turn as active_turn

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

ON_BUSY_CHOICES = ("reject", "interrupt", "enqueue")
TITLE_FROM_MESSAGE_CHARS = 60
# What a title may not hold besides line breaks (``one_line_text``): left out of a title taken
# from a message, which may hold them (bidirectional controls, C1 controls).
_NOT_IN_A_TITLE = re.compile(rf"[{FORBIDDEN}{NOT_FOR_READERS}]")

USER_FACING_ERRORS = {
    ErrorCode.LLM_ERROR: "The language model could not be reached or kept failing.",
    ErrorCode.TOOL_ERROR: "A tool failed in a way the agent could not recover from.",
    ErrorCode.WORKER_LOST: "The worker running this turn stopped responding.",
    ErrorCode.MODEL_CALL_LIMIT: "The agent reached its limit of model calls for one turn.",
    ErrorCode.PERSISTENCE_ERROR: "The turn's progress could not be saved.",
    ErrorCode.INTERNAL_ERROR: "Something went wrong while running this turn.",
}

INTERRUPT_TEXT = {
    StopReason.USER_CANCEL: "Stopped by the user.",
    StopReason.WORKER_DRAIN: "Stopped because its worker shut down.",
    StopReason.PARENT_STOPPED: "Stopped because the turn that started it was stopped.",
    StopReason.APPROVAL_EXPIRED: "Stopped because an approval was not given in time.",
}


class SessionBusy(ServiceError):
    code = "session_busy"
    detail = "A turn is already active in this session."


class TooManyActiveTurns(ServiceError):
    code = "too_many_active_turns"
    detail = (
        "Too many of your turns are active at once. Wait for one to end, or stop one, "
        "and send again."
    )


class NoActiveTurn(ServiceError):
    code = "no_active_turn"
    detail = "This session has no active turn to cancel."


class IllegalTransition(ServiceError):
    code = "illegal_transition"
    detail = "The turn cannot make that change from its current status."


class LeaseLost(ServiceError):
    """The caller's lease token is not the turn's current one: another owner took over."""

    code = "lease_lost"
    detail = "This worker no longer owns the turn."


@dataclass(frozen=True)
class CancelOutcome:
    turn: Turn
    status: str

    @property
    def is_final(self) -> bool:
        return self.status in TERMINAL_STATUSES


def _now():
    return timezone.now()


def lock_turn(turn_id: int) -> tuple[AgentSession, Turn]:
    session_id = Turn.objects.values_list("session_id", flat=True).get(pk=turn_id)
    session = AgentSession.objects.select_for_update().get(pk=session_id)
    turn = Turn.objects.select_for_update().get(pk=turn_id)
    return session, turn


def lock_session(session_id) -> AgentSession:
    return AgentSession.objects.select_for_update().get(pk=session_id)


def lock_turn_if_present(turn_id: int) -> tuple[AgentSession, Turn] | None:
    """``lock_turn``, or None when the turn was deleted with its session (scheduled work that
    found it a moment before)."""
    try:
        return lock_turn(turn_id)
    except (Turn.DoesNotExist, AgentSession.DoesNotExist):
        return None


def _lock_worker_turn(turn_id: int) -> tuple[AgentSession, Turn]:
    """``lock_turn`` for a worker's write. A turn deleted with its session has no lease any
    more: its worker gets ``LeaseLost`` and lets the turn go, as when it was taken over."""
    locked = lock_turn_if_present(turn_id)
    if locked is None:
        raise LeaseLost()
    return locked


def _move(turn: Turn, to: str) -> None:
    if to not in ALLOWED_MOVES[turn.status]:
        raise IllegalTransition(f"{turn.status} -> {to}")
    turn.status = to


def _status_event(session: AgentSession, turn: Turn, **extra: Any) -> TimelineEvent:
    data = {"status": turn.status, "parent": turn.parent_id, **extra}
    if turn.stop_reason:
        data["stop_reason"] = turn.stop_reason
    if turn.error_code:
        data["error_code"] = turn.error_code
    return events.append(session=session, turn=turn, kind=EventKind.STATUS, data=data)


def _require_lease(turn: Turn, lease_token) -> None:
    if lease_token is None or turn.lease_token is None or str(turn.lease_token) != str(lease_token):
        raise LeaseLost()


def _enqueue_on_commit(turn: Turn) -> None:
    """Hand the turn to a worker once the transaction commits.

    ``robust``: a broker that is down must not turn a committed change into an error for the
    caller; the turn stays queued and housekeeping hands it over again (``turns_redeliver``).
    """
    turn.enqueued_at = _now()
    Turn.objects.filter(pk=turn.pk).update(enqueued_at=turn.enqueued_at)
    turn_id = turn.pk
    transaction.on_commit(lambda: delivery.turn_enqueue(turn_id), robust=True)


def _next_index(session: AgentSession) -> int:
    return (session.turns.aggregate(m=Max("index"))["m"] or 0) + 1


# Sessions


def _check_title(title: str) -> None:
    """Refuse (``ValidationError``) a title that is not one line of text a person may read. The
    API, the pages and the admin check it first, as the model field does; this catches a caller
    that did not: a title reaches every approver's e-mail about the session."""
    if title:
        one_line_text(title)


def session_create(*, owner, title: str = "", agent: Agent | None = None) -> AgentSession:
    _check_title(title)
    with transaction.atomic():
        session = AgentSession.objects.create(
            owner=owner, title=title.strip()[:TITLE_MAX_LENGTH], agent=agent or agent_default()
        )
        events.session_created_on_commit(session)
    return session


def session_rename(*, session: AgentSession, title: str) -> AgentSession:
    """Give the session a new title (blank: it is named by its id until its next message)."""
    _check_title(title)
    with transaction.atomic():
        locked = lock_session(session.pk)
        locked.title = title.strip()[:TITLE_MAX_LENGTH]
        locked.save(update_fields=["title", "updated_at"])
        events.session_renamed_on_commit(locked)
        return locked


def session_delete(*, session: AgentSession, actor) -> None:
    """Delete the session with its turns, timeline, approval requests and grants.

    Its active turn is stopped first, as by Stop: one interrupt notice, its pending approval
    requests cancelled and their approvers told, its worker signalled. A running turn is
    finalized here rather than by its worker, which would otherwise write the notice after the
    rows are gone; the worker's later writes find no lease (``LeaseLost``) and it lets the turn
    go. Turns waiting behind it end stopped too. All of it happens under the session's lock in
    one transaction, so no message can start a turn in between, and open pages get the
    stop's events before they are told that the session is gone.
    """
    with transaction.atomic():
        locked = lock_session(session.pk)
        # Told now, while the requests can still be read: the notices go out after the rows
        # are deleted.
        approval_records.requests_withdraw(locked)
        current = active_turn(locked)
        if current is not None:
            current = Turn.objects.select_for_update().get(pk=current.pk)
            _cancel_locked(
                locked, current, actor=actor, reason=StopReason.USER_CANCEL, promote_next=False
            )
            if current.status == S.STOPPING:
                finalize_locked(locked, current, status=S.STOPPED, promote_next=False)
        waiting = locked.turns.filter(parent__isnull=True, status=S.PENDING).order_by("index")
        for turn_id in waiting.values_list("pk", flat=True):
            turn = Turn.objects.select_for_update().get(pk=turn_id)
            finalize_locked(
                locked,
                turn,
                status=S.STOPPED,
                stop_reason=StopReason.USER_CANCEL,
                actor=actor,
                promote_next=False,
            )
        events.session_deleted_on_commit(locked)
        locked.delete()


def agent_make_default(*, agent_id: int) -> None:
    """Make a profile the one sessions get when created without a choice. There is one default
    (a partial unique constraint): the previous one is unmarked first."""
    with transaction.atomic():
        Agent.objects.filter(is_default=True).exclude(pk=agent_id).update(is_default=False)
        Agent.objects.filter(pk=agent_id).update(is_default=True)


# Starting turns


def turn_start(*, session: AgentSession, message: str, actor, on_busy: str = "reject") -> Turn:
    """Start a turn with the user's message, or queue it behind the active one.

    ``on_busy``: ``reject`` refuses with ``SessionBusy``; ``interrupt`` stops the active turn
    first and starts the new one next, ahead of the turns already waiting; ``enqueue`` leaves the
    new turn ``pending`` until the turns before it have ended.

    A turn that would start now is refused with ``TooManyActiveTurns`` while the session's owner
    has ``MAX_ACTIVE_TURNS_PER_USER`` active turns over all their sessions. A turn left waiting
    in line is not: it starts only when its session's active turn ends, so the count is the same.
    """
    if on_busy not in ON_BUSY_CHOICES:
        raise ValueError(on_busy)
    turns_reap_expired(session_id=session.pk)
    try:
        with transaction.atomic():
            locked = lock_session(session.pk)
            current = active_turn(locked)
            waiting = locked.turns.filter(parent__isnull=True, status=S.PENDING).exists()
            if current is not None or waiting:
                if on_busy == "reject":
                    raise SessionBusy()
                if on_busy == "interrupt" and current is not None:
                    current = Turn.objects.select_for_update().get(pk=current.pk)
                    # The waiting turns stay pending: this message is the one to start next.
                    _cancel_locked(
                        locked,
                        current,
                        actor=actor,
                        reason=StopReason.USER_CANCEL,
                        promote_next=False,
                    )
            still_busy = active_turn(locked) is not None or (
                on_busy != "interrupt"
                and locked.turns.filter(parent__isnull=True, status=S.PENDING).exists()
            )
            if not still_busy:
                _require_turn_allowance(locked.owner_id)
            named = not locked.title
            if named:
                # An untitled session is named after its first message, as chat apps do.
                locked.title = _title_from(message)
                locked.save(update_fields=["title"])
            turn = Turn.objects.create(
                session=locked,
                index=_next_index(locked),
                user_message=message,
                status=S.PENDING if still_busy else S.QUEUED,
                jumps_queue=still_busy and on_busy == "interrupt",
                agent=locked.agent,
                agent_snapshot=agent_snapshot(locked.agent),
            )
            events.append(
                session=locked, turn=turn, kind=EventKind.USER_MESSAGE, data={"text": message}
            )
            _status_event(locked, turn)
            if named:
                # After the turn's events, so a page sees the message before the title it gave.
                events.session_renamed_on_commit(locked)
            if turn.status == S.QUEUED:
                _enqueue_on_commit(turn)
            return turn
    except IntegrityError as exc:
        # The partial unique constraint is the last word when two requests race.
        raise SessionBusy() from exc


def _require_turn_allowance(owner_id: int) -> None:
    """Refuse one more active turn of this user beyond ``MAX_ACTIVE_TURNS_PER_USER``.

    The user's row is locked first: two sends in two of their sessions lock two different
    session rows, and without it both could count the same turns and pass on PostgreSQL. (SQLite
    runs one write transaction at a time anyway.) Nothing locks a user's row and then a session,
    so taking it after the session's lock cannot deadlock.
    """
    get_user_model().objects.select_for_update().filter(pk=owner_id).values_list("pk").first()
    if user_active_turns(owner_id).count() >= settings.MAX_ACTIVE_TURNS_PER_USER:
        raise TooManyActiveTurns()


def _title_from(message: str) -> str:
    """The message's first line with text, less the characters a title may not hold: a message
    may hold what a title may not, and naming the session must not fail the message."""
    lines = (_NOT_IN_A_TITLE.sub("", line).strip() for line in message.splitlines())
    first_line = next((line for line in lines if line), "")
    return (
        first_line
        if len(first_line) <= TITLE_FROM_MESSAGE_CHARS
        else (first_line[: TITLE_FROM_MESSAGE_CHARS - 1].rstrip() + "…")
    )


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
    _move(nxt, S.QUEUED)
    nxt.save(update_fields=["status"])
    _status_event(session, nxt)
    _enqueue_on_commit(nxt)


def child_turn_start(*, parent_id: int, lease_token, task: str) -> Turn:
    """A sub-agent's turn. It runs inside its parent's worker and shares the parent's lease
    token, so whoever takes the parent over also fences off the child's writes."""
    with transaction.atomic():
        session, parent = _lock_worker_turn(parent_id)
        _require_lease(parent, lease_token)
        if parent.status != S.RUNNING:
            raise IllegalTransition(f"parent is {parent.status}")
        now = _now()
        child = Turn.objects.create(
            session=session,
            parent=parent,
            index=_next_index(session),
            user_message=task,
            status=S.RUNNING,
            lease_token=parent.lease_token,
            worker_id=parent.worker_id,
            started_at=now,
            heartbeat_at=now,
            attempts=1,
            agent_id=parent.agent_id,
            agent_snapshot=parent.agent_snapshot,
        )
        _status_event(session, child, task=task)
        return child


# The worker's lease


def turn_take_lease(*, turn_id: int, worker_id: str) -> uuid.UUID | None:
    """queued -> running with a fresh fencing token; None when someone else has the turn, or
    when it is gone with its deleted session."""
    with transaction.atomic():
        try:
            session, turn = _lock_worker_turn(turn_id)
        except LeaseLost:
            return None
        if turn.status != S.QUEUED:
            return None
        _move(turn, S.RUNNING)
        now = _now()
        turn.lease_token = uuid.uuid4()
        turn.worker_id = worker_id
        turn.heartbeat_at = now
        turn.started_at = turn.started_at or now
        turn.attempts += 1
        turn.save(
            update_fields=[
                "status",
                "lease_token",
                "worker_id",
                "heartbeat_at",
                "started_at",
                "attempts",
            ]
        )
        _status_event(session, turn)
        return turn.lease_token


def turns_heartbeat(*, worker_id: str, turn_ids: Iterable[int]) -> int:
    """Refresh the leases of the turns one host runs, in one statement.

    ``worker_id`` is unique per host and written with each lease (and cleared whenever the
    lease is released), so it fences like the lease token: a turn taken over elsewhere no longer
    carries it and is not refreshed. ``turn_ids`` are the turns the host still runs: a turn
    whose run ended without releasing its lease (its last write failed) keeps the host's id
    but is not refreshed, so the reaper takes it over once its lease expires.
    """
    return Turn.objects.filter(
        pk__in=list(turn_ids), worker_id=worker_id, status__in=(S.RUNNING, S.STOPPING)
    ).update(heartbeat_at=_now())


def turn_record_event(
    *, turn_id: int, lease_token, kind: str, data: dict[str, Any]
) -> TimelineEvent:
    with transaction.atomic():
        session, turn = _lock_worker_turn(turn_id)
        _require_lease(turn, lease_token)
        return events.append(session=session, turn=turn, kind=kind, data=data)


def turn_save_progress(
    *,
    turn_id: int,
    lease_token,
    checkpoint: dict[str, Any] | None = None,
    usage: dict[str, int] | None = None,
    assistant_event_id: int | None = None,
    assistant_text: str | None = None,
    streaming: bool = True,
) -> TimelineEvent | None:
    """Checkpoint a running turn: conversation so far, usage, and the assistant text so far.

    With ``assistant_text`` it creates (first call) or updates the assistant message event and
    returns it. Final text is rendered here, before the locks are taken: a long answer's
    Markdown takes a while, and on SQLite a write transaction holds the database-wide lock.
    """
    final_html = None
    if assistant_text is not None and not streaming:
        final_html = rendering.assistant_html(assistant_text)
    with transaction.atomic():
        session, turn = _lock_worker_turn(turn_id)
        _require_lease(turn, lease_token)
        fields = []
        if checkpoint is not None:
            turn.checkpoint = checkpoint
            fields.append("checkpoint")
        if usage is not None:
            turn.usage = usage
            fields.append("usage")
        if fields:
            turn.save(update_fields=fields)
        if assistant_text is None:
            return None
        return _write_assistant_text(
            session,
            turn,
            assistant_event_id,
            {"text": assistant_text, "streaming": streaming},
            html=final_html,
        )


@dataclass(frozen=True)
class TextCheckpoint:
    """The text so far of a streaming assistant message, as one turn's runner holds it."""

    turn_id: int
    lease_token: uuid.UUID
    event_id: int
    text: str


def turns_save_streaming_text(*, checkpoints: list[TextCheckpoint]) -> set[int]:
    """Checkpoint the streaming text of many turns in one transaction; returns the turns whose
    lease is gone (nothing is written for them).

    A host writes all its streaming turns at once: on SQLite every write transaction takes the
    one database-wide write lock, and a hundred turns each writing a few times a second spent
    their time waiting for it. The turn rows are locked in id order, as everywhere, so the
    lease check holds against a concurrent finalize; their sessions are not needed, since only
    the message's own row changes.
    """
    by_turn = {checkpoint.turn_id: checkpoint for checkpoint in checkpoints}
    with transaction.atomic():
        leases = dict(
            Turn.objects.select_for_update()
            .filter(pk__in=by_turn)
            .order_by("pk")
            .values_list("pk", "lease_token")
        )
        current = {
            turn_id
            for turn_id, checkpoint in by_turn.items()
            if leases.get(turn_id) is not None
            and str(leases[turn_id]) == str(checkpoint.lease_token)
        }
        messages = TimelineEvent.objects.filter(
            pk__in=[by_turn[turn_id].event_id for turn_id in current],
            kind=EventKind.ASSISTANT_MESSAGE,
        )
        for message in messages:
            data = {"text": by_turn[message.turn_id].text, "streaming": True}
            if message.data.get("streaming") and message.data != data:
                events.update(event=message, data=data)
    return set(by_turn) - current


def _write_assistant_text(
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


# Approval


def turn_park_for_approval(
    *, turn_id: int, lease_token, checkpoint: dict[str, Any], calls: list[dict[str, Any]]
) -> bool:
    """running -> waiting_for_approval with one ApprovalRequest per call; the task then returns.

    Each call is ``{"id", "name", "arguments"}``, and optionally the approval it needs:
    ``approvals_needed`` (default 1), ``allow_self_approval`` (default True), ``group`` (the
    id of the group whose members decide; default any approver) and ``policy`` (the rule that
    asked for the approval, named in the timeline).

    Returns False when a cancel arrived first (the turn is stopping): nothing is parked and the
    caller stops instead.
    """
    with transaction.atomic():
        session, turn = _lock_worker_turn(turn_id)
        _require_lease(turn, lease_token)
        if turn.status != S.RUNNING:
            return False
        expires_at = _now() + timedelta(seconds=settings.APPROVAL_TIMEOUT)
        approval_records.requests_open(session, turn, calls=calls, expires_at=expires_at)
        _move(turn, S.WAITING_FOR_APPROVAL)
        turn.checkpoint = checkpoint
        turn.lease_token = None
        turn.worker_id = ""
        turn.save(update_fields=["status", "checkpoint", "lease_token", "worker_id"])
        _status_event(session, turn)
        events.approval_queue_changed_on_commit()
        return True


def turn_resume_after_decision(*, session: AgentSession, turn: Turn) -> None:
    """waiting_for_approval -> queued once no request of the turn is pending any more.

    Called by ``approvals_app.services`` with both rows already locked.
    """
    if turn.approval_requests.filter(status=ApprovalStatus.PENDING).exists():
        return
    _move(turn, S.QUEUED)
    turn.save(update_fields=["status"])
    _status_event(session, turn)
    _enqueue_on_commit(turn)


# Stopping


def turn_request_cancel(
    *, session: AgentSession, actor, reason: str = "", turn_id: int | None = None
) -> CancelOutcome:
    """Stop the session's active turn (or the named one) as in DESIGN.md section 5."""
    with transaction.atomic():
        locked = lock_session(session.pk)
        if turn_id is not None:
            turn = locked.turns.filter(pk=turn_id, parent__isnull=True).first()
            if turn is None:
                raise Turn.DoesNotExist()
        else:
            turn = active_turn(locked)
            if turn is None:
                raise NoActiveTurn()
        turn = Turn.objects.select_for_update().get(pk=turn.pk)
        if turn.is_terminal:
            return CancelOutcome(turn=turn, status=turn.status)
        _cancel_locked(locked, turn, actor=actor, reason=StopReason.USER_CANCEL, note=reason)
        return CancelOutcome(turn=turn, status=turn.status)


def _cancel_locked(
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
    _move(turn, S.STOPPING)
    turn.stop_reason = reason
    turn.cancel_requested_at = _now()
    turn.cancel_requested_by = actor if getattr(actor, "pk", None) else None
    turn.save(update_fields=["status", "stop_reason", "cancel_requested_at", "cancel_requested_by"])
    _status_event(session, turn, note=note[:500])
    events.signal_turn_on_commit(turn)


def turn_finalize(
    *,
    turn_id: int,
    status: str,
    lease_token=None,
    stop_reason: str = "",
    error_code: str = "",
    error_detail: str = "",
    partial_text: str | None = None,
    assistant_event_id: int | None = None,
) -> Turn:
    """End a turn. Idempotent: a terminal turn is returned unchanged.

    A worker passes its lease token; a stale worker (the turn was reaped or resumed elsewhere)
    gets ``LeaseLost`` and writes nothing. A turn that is ``stopping`` ends ``stopped`` whatever
    the worker was about to report: the user asked for a stop, and a stop is not an error. The
    assistant text streamed so far is kept.
    """
    with transaction.atomic():
        session, turn = lock_turn(turn_id) if lease_token is None else _lock_worker_turn(turn_id)
        if turn.is_terminal:
            return turn
        if lease_token is not None:
            _require_lease(turn, lease_token)
        if partial_text:
            _write_assistant_text(
                session, turn, assistant_event_id, {"text": partial_text, "streaming": False}
            )
        finalize_locked(
            session,
            turn,
            status=status,
            stop_reason=stop_reason,
            error_code=error_code,
            error_detail=error_detail,
        )
        return turn


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
        turn.cancel_requested_at = turn.cancel_requested_at or _now()
        if getattr(actor, "pk", None):
            turn.cancel_requested_by = actor
    _move(turn, status)
    turn.stop_reason = stop_reason if status == S.STOPPED else ""
    turn.error_code = error_code if status == S.FAILED else ""
    turn.finished_at = _now()
    turn.lease_token = None
    turn.worker_id = ""
    turn.save()

    # A streaming assistant message of this turn is no longer streaming.
    for event in turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE):
        if event.data.get("streaming"):
            events.update(event=event, data={**event.data, "streaming": False})

    approval_records.requests_close(turn, status=ApprovalStatus.CANCELLED)

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
    _status_event(session, turn, **ending)
    if turn.parent_id is None and promote_next:
        _promote_next_pending(session)


def turn_requeue(
    *,
    turn_id: int,
    lease_token,
    partial_text: str | None = None,
    assistant_event_id: int | None = None,
) -> bool:
    """running -> queued, to resume elsewhere from the checkpoint (a worker draining).

    False when the turn is no longer plainly running (a stop is under way): the caller stops it.
    """
    with transaction.atomic():
        session, turn = _lock_worker_turn(turn_id)
        _require_lease(turn, lease_token)
        if turn.status != S.RUNNING:
            return False
        if partial_text:
            _write_assistant_text(
                session, turn, assistant_event_id, {"text": partial_text, "streaming": False}
            )
        _move(turn, S.QUEUED)
        turn.lease_token = None
        turn.worker_id = ""
        turn.save(update_fields=["status", "lease_token", "worker_id"])
        _status_event(session, turn, note="worker shut down; resuming")
        _enqueue_on_commit(turn)
        return True


def turns_reap_expired(*, session_id=None) -> int:
    """Finalize or resume turns whose worker stopped heartbeating (it died).

    A stopping turn ends stopped; a running one resumes from its checkpoint up to
    ``AGENT_MAX_ATTEMPTS`` times, and fails with ``worker_lost`` after that. Resumes after an
    approval or a drain are not losses and do not count.
    """
    cutoff = _now() - timedelta(seconds=settings.AGENT_LEASE_TIMEOUT)
    stale = Turn.objects.filter(
        parent__isnull=True, status__in=(S.RUNNING, S.STOPPING), heartbeat_at__lt=cutoff
    )
    if session_id is not None:
        stale = stale.filter(session_id=session_id)
    reaped = 0
    for turn_id in stale.values_list("pk", flat=True):
        with transaction.atomic():
            locked = lock_turn_if_present(turn_id)
            if locked is None:
                continue
            session, turn = locked
            if turn.status not in (S.RUNNING, S.STOPPING) or turn.heartbeat_at >= cutoff:
                continue
            if turn.status == S.STOPPING:
                finalize_locked(session, turn, status=S.STOPPED)
            elif turn.worker_losses < settings.AGENT_MAX_ATTEMPTS:
                for child in turn.children.exclude(status__in=TERMINAL_STATUSES):
                    child = Turn.objects.select_for_update().get(pk=child.pk)
                    finalize_locked(
                        session, child, status=S.STOPPED, stop_reason=StopReason.PARENT_STOPPED
                    )
                _move(turn, S.QUEUED)
                turn.lease_token = None
                turn.worker_id = ""
                turn.worker_losses += 1
                turn.save(update_fields=["status", "lease_token", "worker_id", "worker_losses"])
                _status_event(session, turn, note="worker lost; resuming")
                _enqueue_on_commit(turn)
            else:
                finalize_locked(session, turn, status=S.FAILED, error_code=ErrorCode.WORKER_LOST)
            reaped += 1
    return reaped


def turns_redeliver(*, session_id=None) -> int:
    """Hand queued turns to the broker again when no worker took them for a while.

    The first hand-over can be lost (the broker was down at commit). A second delivery is
    harmless: a worker runs a turn only after taking its lease, which one delivery wins.
    """
    cutoff = _now() - timedelta(seconds=settings.AGENT_REDELIVER_AFTER)
    lost = Turn.objects.filter(parent__isnull=True, status=S.QUEUED, enqueued_at__lt=cutoff)
    if session_id is not None:
        lost = lost.filter(session_id=session_id)
    redelivered = 0
    for turn_id in lost.values_list("pk", flat=True):
        with transaction.atomic():
            locked = lock_turn_if_present(turn_id)
            if locked is None:
                continue
            _session, turn = locked
            if turn.status != S.QUEUED or turn.enqueued_at >= cutoff:
                continue
            _enqueue_on_commit(turn)
            redelivered += 1
    return redelivered
