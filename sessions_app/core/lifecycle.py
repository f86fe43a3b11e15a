"""A turn's life as its users drive it: start (or queue behind the active turn), a sub-agent's
child turn, parking for approval and resuming after the decision, cancelling, and ending.

Each service locks the session row and then the turn row, makes its move through
``transitions`` and leaves broadcasting and task enqueueing to ``on_commit``."""

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from agentproj import metrics, tracing
from agentproj.validators import FORBIDDEN, NOT_FOR_READERS
from agentproj.vocabulary import ACTIVE_STATUSES, TERMINAL_STATUSES, EventKind, StopReason
from sessions_app.core import broadcast, budgets, events, hooks
from sessions_app.core.errors import (
    IllegalTransition,
    NoActiveTurn,
    SessionBusy,
    TooManyActiveTurns,
)
from sessions_app.core.housekeeping import turns_reap_expired
from sessions_app.core.locks import (
    lock_session,
    lock_session_with_agent,
    lock_turn,
    lock_worker_turn,
    require_lease,
)
from sessions_app.core.selectors import session_active_turn as active_turn
from sessions_app.core.transitions import (
    S,
    cancel_locked,
    deliver_on_commit,
    enqueue_on_commit,
    finalize_locked,
    move,
    status_data,
    status_event,
    write_assistant_text,
)
from sessions_app.models import AgentSession, Turn

ON_BUSY_CHOICES = ("reject", "interrupt", "enqueue")


TITLE_FROM_MESSAGE_CHARS = 60


# What a title may not hold besides line breaks (``one_line_text``): left out of a title taken
# from a message, which may hold them (bidirectional controls, C1 controls).
_NOT_IN_A_TITLE = re.compile(rf"[{FORBIDDEN}{NOT_FOR_READERS}]")


@dataclass(frozen=True)
class CancelOutcome:
    turn: Turn
    status: str

    @property
    def is_final(self) -> bool:
        return self.status in TERMINAL_STATUSES


def _next_index(session: AgentSession) -> int:
    return (session.turns.aggregate(m=Max("index"))["m"] or 0) + 1


@dataclass(frozen=True)
class _Line:
    """A session's line of turns and its owner's active turns, read in one query once the
    session (and on PostgreSQL its owner) is locked."""

    next_index: int
    active: bool
    waiting: bool
    owner_active: int


def line_of(session: AgentSession) -> _Line:
    top_level_active = Q(parent__isnull=True, status__in=ACTIVE_STATUSES)
    this_session = Q(session_id=session.pk)
    counts = Turn.objects.filter(
        this_session | (Q(session__owner_id=session.owner_id) & top_level_active)
    ).aggregate(
        last_index=Max("index", filter=this_session),
        active=Count("pk", filter=this_session & top_level_active),
        waiting=Count("pk", filter=this_session & Q(parent__isnull=True, status=S.PENDING)),
        owner_active=Count("pk", filter=top_level_active),
    )
    return _Line(
        next_index=(counts["last_index"] or 0) + 1,
        active=bool(counts["active"]),
        waiting=bool(counts["waiting"]),
        owner_active=counts["owner_active"],
    )


def turn_start(*, session: AgentSession, message: str, actor, on_busy: str = "reject") -> Turn:
    """Start a turn with the user's message, or queue it behind the active one.

    ``on_busy``: ``reject`` refuses with ``SessionBusy``; ``interrupt`` stops the active turn
    first and starts the new one next, ahead of the turns already waiting; ``enqueue`` leaves the
    new turn ``pending`` until the turns before it have ended.

    A turn that would start now is refused with ``TooManyActiveTurns`` while the session's owner
    has ``MAX_ACTIVE_TURNS_PER_USER`` active turns over all their sessions. A turn left waiting
    in line is not: it starts only when its session's active turn ends, so the count is the same.
    Any message of an owner who has used up a budget is refused with ``BudgetExceeded``, before
    anything changes (an active turn it would interrupt goes on).

    Before refusing a busy session, the turns of it whose worker died are reaped (the one lazy
    repair the contract allows on a request): the session may be free once they are.
    """
    return _turn_start_or_reap(session.pk, message, actor, on_busy, owner_id=None)


def turn_send(*, session_id, owner, message: str, on_busy: str = "reject") -> Turn:
    """``turn_start`` for a message a user sends to a session of theirs, found and locked in one
    query: ``AgentSession.DoesNotExist`` when it is not theirs (the API's turn POST)."""
    return _turn_start_or_reap(session_id, message, owner, on_busy, owner_id=owner.pk)


def _turn_start_or_reap(session_id, message: str, actor, on_busy: str, *, owner_id) -> Turn:
    if on_busy not in ON_BUSY_CHOICES:
        raise ValueError(on_busy)
    try:
        return _turn_start(session_id, message, actor, on_busy, owner_id=owner_id)
    except SessionBusy:
        if not turns_reap_expired(session_id=session_id):
            raise
        return _turn_start(session_id, message, actor, on_busy, owner_id=owner_id)


def _turn_start(session_id, message: str, actor, on_busy: str, *, owner_id) -> Turn:
    """``turn_start`` in one transaction. A sent message's hot path: on an idle session it reads
    and writes in seven queries, eight when the owner has a budget
    (``tests/web/test_api_turn_post_queries.py`` counts them)."""
    try:
        with transaction.atomic():
            locked = lock_session_with_agent(session_id, owner_id=owner_id)
            lock_owner(locked.owner_id)
            # Under the owner's lock, so two messages sent at once are judged one after the other.
            budgets.budget_check(user_id=locked.owner_id)
            line = line_of(locked)
            busy = line.active or line.waiting
            if busy:
                if on_busy == "reject":
                    raise SessionBusy()
                if on_busy == "interrupt" and line.active:
                    current = Turn.objects.select_for_update().get(pk=active_turn(locked).pk)
                    # The waiting turns stay pending: this message is the one to start next.
                    cancel_locked(
                        locked,
                        current,
                        actor=actor,
                        reason=StopReason.USER_CANCEL,
                        promote_next=False,
                    )
                    busy = active_turn(locked) is not None
            if not busy and line.owner_active >= settings.MAX_ACTIVE_TURNS_PER_USER:
                raise TooManyActiveTurns()
            named = not locked.title
            if named:
                # An untitled session is named after its first message, as chat apps do.
                locked.title = _title_from(message)
            turn = Turn.objects.create(
                session=locked,
                index=line.next_index,
                user_message=message,
                status=S.PENDING if busy else S.QUEUED,
                jumps_queue=busy and on_busy == "interrupt",
                agent=locked.agent,
                agent_snapshot=locked.agent.snapshot(),
                enqueued_at=None if busy else timezone.now(),
                traceparent=tracing.current_traceparent(),
            )
            transaction.on_commit(metrics.TURNS_STARTED.inc)
            events.append_many(
                session=locked,
                turn=turn,
                entries=[
                    (EventKind.USER_MESSAGE, {"text": message}),
                    (EventKind.STATUS, status_data(turn)),
                ],
                session_fields=["title"] if named else [],
            )
            if named:
                # After the turn's events, so a page sees the message before the title it gave.
                broadcast.session_renamed_on_commit(locked)
            if not busy:
                deliver_on_commit(turn)
            return turn
    except IntegrityError as exc:
        # The partial unique constraint is the last word when two requests race.
        raise SessionBusy() from exc


def lock_owner(owner_id: int) -> None:
    """Lock the user's row before counting their active turns.

    Two sends in two of their sessions lock two different session rows, and without it both
    could count the same turns and pass on PostgreSQL. SQLite needs nothing: its transactions
    take the one write lock when they begin (``transaction_mode`` IMMEDIATE), so they run one at
    a time. Nothing locks a user's row and then a session, so taking it after the session's lock
    cannot deadlock.
    """
    if connection.features.has_select_for_update:
        get_user_model().objects.select_for_update().filter(pk=owner_id).values_list("pk").first()


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


def child_turn_start(*, parent_id: int, lease_token, task: str) -> Turn:
    """A sub-agent's turn. It runs inside its parent's worker and shares the parent's lease
    token, so whoever takes the parent over also fences off the child's writes."""
    with transaction.atomic():
        session, parent = lock_worker_turn(parent_id)
        require_lease(parent, lease_token)
        if parent.status != S.RUNNING:
            raise IllegalTransition(f"parent is {parent.status}")
        now = timezone.now()
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
        transaction.on_commit(metrics.TURNS_STARTED.inc)
        status_event(session, child, task=task)
        return child


def turn_park_for_approval(
    *, turn_id: int, lease_token, checkpoint: dict[str, Any], calls: list[dict[str, Any]]
) -> bool:
    """running -> waiting_for_approval with one ApprovalRequest per call; the task then returns.

    Each call is ``{"id", "name", "arguments"}``, and optionally the approval it needs:
    ``approvals_needed`` (default 1), ``allow_self_approval`` (default True), ``group`` (the
    id of the group whose members decide; default any approver), ``escalate_to`` and
    ``escalate_after`` (a group asked too when the request is still pending that many seconds
    later) and ``policy`` (the rule that asked for the approval, named in the timeline).
    A call nobody could ever approve is rejected at once by the approvals app; when that leaves
    none waiting, the turn is queued again straight away, to tell the model.

    Returns False when a cancel arrived first (the turn is stopping): nothing is parked and the
    caller stops instead.
    """
    with transaction.atomic():
        session, turn = lock_worker_turn(turn_id)
        require_lease(turn, lease_token)
        if turn.status != S.RUNNING:
            return False
        expires_at = timezone.now() + timedelta(seconds=settings.APPROVAL_TIMEOUT)
        waiting = hooks.approvals().requests_open(session, turn, calls=calls, expires_at=expires_at)
        move(turn, S.WAITING_FOR_APPROVAL)
        turn.checkpoint = checkpoint
        turn.lease_token = None
        turn.worker_id = ""
        turn.save(update_fields=["status", "checkpoint", "lease_token", "worker_id"])
        status_event(session, turn)
        if waiting:
            broadcast.approval_queue_changed_on_commit()
        else:
            turn_resume_after_decision(session=session, turn=turn)
        return True


def turn_resume_after_decision(*, session: AgentSession, turn: Turn) -> None:
    """waiting_for_approval -> queued: its requests are decided. Called by the approvals'
    services with both rows already locked, once none of the turn's requests is pending."""
    move(turn, S.QUEUED)
    turn.save(update_fields=["status"])
    status_event(session, turn)
    enqueue_on_commit(turn)


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
        cancel_locked(locked, turn, actor=actor, reason=StopReason.USER_CANCEL, note=reason)
        return CancelOutcome(turn=turn, status=turn.status)


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
        session, turn = lock_turn(turn_id) if lease_token is None else lock_worker_turn(turn_id)
        if turn.is_terminal:
            return turn
        if lease_token is not None:
            require_lease(turn, lease_token)
        if partial_text:
            write_assistant_text(
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
