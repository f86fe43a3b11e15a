"""Scheduled repairs: turns whose worker died are finalized or resumed, and deliveries the
broker lost are handed over again. Both are idempotent and take the same locks as every
service."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agentproj.vocabulary import TERMINAL_STATUSES, ErrorCode, StopReason
from sessions_app.core.locks import lock_turn_if_present
from sessions_app.core.transitions import S, enqueue_on_commit, finalize_locked, move, status_event
from sessions_app.models import Turn


def turns_reap_expired(*, session_id=None) -> int:
    """Finalize or resume turns whose worker stopped heartbeating (it died).

    A stopping turn ends stopped; a running one resumes from its checkpoint up to
    ``AGENT_MAX_ATTEMPTS`` times, and fails with ``worker_lost`` after that. Resumes after an
    approval or a drain are not losses and do not count.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.AGENT_LEASE_TIMEOUT)
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
                move(turn, S.QUEUED)
                turn.lease_token = None
                turn.worker_id = ""
                turn.worker_losses += 1
                turn.save(update_fields=["status", "lease_token", "worker_id", "worker_losses"])
                status_event(session, turn, note="worker lost; resuming")
                enqueue_on_commit(turn)
            else:
                finalize_locked(session, turn, status=S.FAILED, error_code=ErrorCode.WORKER_LOST)
            reaped += 1
    return reaped


def turns_redeliver(*, session_id=None) -> int:
    """Hand queued turns to the broker again when no worker took them for a while.

    The first hand-over can be lost (the broker was down at commit). A second delivery is
    harmless: a worker runs a turn only after taking its lease, which one delivery wins.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.AGENT_REDELIVER_AFTER)
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
            enqueue_on_commit(turn)
            redelivered += 1
    return redelivered
