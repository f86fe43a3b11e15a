"""A worker's hold on the turns it runs: taking the lease, the heartbeat, and the writes made
under it (events, checkpoints, streaming text, handing a turn back), each fenced by the lease
token so that a stale worker writes nothing."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from agentproj import metrics, tracing
from agentproj.vocabulary import EventKind
from sessions_app.core import events, rendering
from sessions_app.core.errors import LeaseLost
from sessions_app.core.locks import lock_worker_turn, require_lease
from sessions_app.core.transitions import (
    S,
    enqueue_on_commit,
    move,
    status_event,
    write_assistant_text,
)
from sessions_app.models import TimelineEvent, Turn


def turn_take_lease(*, turn_id: int, worker_id: str) -> uuid.UUID | None:
    """queued -> running with a fresh fencing token; None when someone else has the turn, or
    when it is gone with its deleted session."""
    with transaction.atomic():
        try:
            session, turn = lock_worker_turn(turn_id)
        except LeaseLost:
            return None
        if turn.status != S.QUEUED:
            return None
        move(turn, S.RUNNING)
        now = timezone.now()
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
        status_event(session, turn)
        if turn.enqueued_at is not None:
            waited = (now - turn.enqueued_at).total_seconds()
            transaction.on_commit(partial(metrics.QUEUE_WAIT.observe, waited))
            transaction.on_commit(
                partial(
                    tracing.record_span,
                    "queue wait",
                    traceparent=turn.traceparent,
                    start=turn.enqueued_at,
                    end=now,
                    attributes={tracing.TURN_ID: turn.pk},
                )
            )
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
    ).update(heartbeat_at=timezone.now())


def turn_record_event(
    *, turn_id: int, lease_token, kind: str, data: dict[str, Any]
) -> TimelineEvent:
    with transaction.atomic():
        session, turn = lock_worker_turn(turn_id)
        require_lease(turn, lease_token)
        return events.append(session=session, turn=turn, kind=kind, data=data)


def turn_save_progress(
    *,
    turn_id: int,
    lease_token,
    checkpoint: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
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
        session, turn = lock_worker_turn(turn_id)
        require_lease(turn, lease_token)
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
        return write_assistant_text(
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
        session, turn = lock_worker_turn(turn_id)
        require_lease(turn, lease_token)
        if turn.status != S.RUNNING:
            return False
        if partial_text:
            write_assistant_text(
                session, turn, assistant_event_id, {"text": partial_text, "streaming": False}
            )
        move(turn, S.QUEUED)
        turn.lease_token = None
        turn.worker_id = ""
        turn.save(update_fields=["status", "lease_token", "worker_id"])
        status_event(session, turn, note="worker shut down; resuming")
        enqueue_on_commit(turn)
        return True
