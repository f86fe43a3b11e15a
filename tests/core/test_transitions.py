"""Every move of the allowed-moves table, reached through the real services, and every refused
move: the services either refuse (an error or a no-op) or make the documented allowed move."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from agentproj.errors import ServiceError
from agentproj.vocabulary import TERMINAL_STATUSES, EventKind, StopReason, TurnStatus
from approvals_app import errors as approval_errors
from approvals_app import services as approval_services
from approvals_app.models import ApprovalStatus
from sessions_app.core import errors, housekeeping, leases, lifecycle, transitions
from sessions_app.models import Turn
from tests.turn_states import (
    EMAIL_CALL,
    interrupts,
    pending_turn,
    queued_turn,
    running_turn,
    stopping_turn,
    turn_in,
    waiting_turn,
)

pytestmark = pytest.mark.django_db

S = TurnStatus
ALL_STATUSES = list(S.values)


def last_status_event(turn: Turn) -> dict:
    return turn.events.filter(kind=EventKind.STATUS).order_by("-seq").first().data


def make_heartbeat_stale(turn: Turn) -> None:
    """What a dead worker leaves behind: a heartbeat older than the lease timeout."""
    stale = timezone.now() - timedelta(seconds=settings.AGENT_LEASE_TIMEOUT + 5)
    Turn.objects.filter(pk=turn.pk).update(heartbeat_at=stale)


# Allowed moves: one way (or more) each is reached in the application.


def pending_to_queued_when_active_turn_ends(owner):
    active, pending = pending_turn(owner)
    lifecycle.turn_request_cancel(session=active.session, actor=owner)
    return pending


def pending_to_stopped_by_named_cancel(owner):
    active, pending = pending_turn(owner)
    lifecycle.turn_request_cancel(session=active.session, actor=owner, turn_id=pending.pk)
    active.refresh_from_db()
    assert active.status == S.QUEUED
    return pending


def queued_to_running_by_lease(owner):
    turn = queued_turn(owner)
    lease = leases.turn_take_lease(turn_id=turn.pk, worker_id="w1")
    turn.refresh_from_db()
    assert lease is not None and turn.lease_token == lease and turn.worker_id == "w1"
    assert turn.started_at is not None and turn.attempts == 1
    return turn


def queued_to_stopped_by_cancel(owner):
    turn = queued_turn(owner)
    outcome = lifecycle.turn_request_cancel(session=turn.session, actor=owner)
    assert outcome.status == S.STOPPED
    return turn


def queued_to_failed_by_finalize(owner):
    turn = queued_turn(owner)
    lifecycle.turn_finalize(turn_id=turn.pk, status=S.FAILED, error_code="persistence_error")
    return turn


def running_to_waiting_by_park(owner):
    turn, _ = waiting_turn(owner)
    return turn


def running_to_stopping_by_cancel(owner):
    turn, _ = running_turn(owner)
    outcome = lifecycle.turn_request_cancel(session=turn.session, actor=owner, reason="enough")
    assert outcome.status == S.STOPPING
    turn.refresh_from_db()
    assert turn.cancel_requested_by == owner and turn.cancel_requested_at is not None
    assert turn.stop_reason == StopReason.USER_CANCEL
    assert last_status_event(turn)["note"] == "enough"
    return turn


def running_to_completed_by_finalize(owner):
    turn, lease = running_turn(owner)
    lifecycle.turn_finalize(
        turn_id=turn.pk, status=S.COMPLETED, lease_token=lease, partial_text="The answer."
    )
    message = turn.events.get(kind=EventKind.ASSISTANT_MESSAGE)
    assert message.data == {"text": "The answer.", "streaming": False}
    return turn


def running_to_failed_by_finalize(owner):
    turn, lease = running_turn(owner)
    lifecycle.turn_finalize(
        turn_id=turn.pk, status=S.FAILED, lease_token=lease, error_code="llm_error"
    )
    turn.refresh_from_db()
    assert turn.error_code == "llm_error"
    assert turn.events.get(kind=EventKind.ERROR).data["code"] == "llm_error"
    return turn


def running_to_stopped_by_drain(owner):
    turn, lease = running_turn(owner)
    lifecycle.turn_finalize(
        turn_id=turn.pk, status=S.STOPPED, lease_token=lease, stop_reason=StopReason.WORKER_DRAIN
    )
    turn.refresh_from_db()
    assert turn.stop_reason == StopReason.WORKER_DRAIN
    return turn


def running_to_queued_by_requeue(owner):
    turn, lease = running_turn(owner)
    assert leases.turn_requeue(turn_id=turn.pk, lease_token=lease) is True
    turn.refresh_from_db()
    assert turn.lease_token is None
    return turn


def waiting_to_queued_by_approval(owner):
    turn, approval = waiting_turn(owner)
    approval_services.approval_decide(approval_id=approval.pk, actor=owner, approve=True)
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    return turn


def waiting_to_stopped_by_cancel(owner):
    turn, approval = waiting_turn(owner)
    outcome = lifecycle.turn_request_cancel(session=turn.session, actor=owner)
    assert outcome.status == S.STOPPED
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.CANCELLED
    return turn


def stopping_to_stopped_by_worker(owner):
    turn, lease = stopping_turn(owner)
    lifecycle.turn_finalize(
        turn_id=turn.pk, status=S.STOPPED, lease_token=lease, partial_text="Once upon"
    )
    assert turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"] == "Once upon"
    return turn


ALLOWED = {
    (S.PENDING, S.QUEUED): pending_to_queued_when_active_turn_ends,
    (S.PENDING, S.STOPPED): pending_to_stopped_by_named_cancel,
    (S.QUEUED, S.RUNNING): queued_to_running_by_lease,
    (S.QUEUED, S.STOPPED): queued_to_stopped_by_cancel,
    (S.QUEUED, S.FAILED): queued_to_failed_by_finalize,
    (S.RUNNING, S.WAITING_FOR_APPROVAL): running_to_waiting_by_park,
    (S.RUNNING, S.STOPPING): running_to_stopping_by_cancel,
    (S.RUNNING, S.COMPLETED): running_to_completed_by_finalize,
    (S.RUNNING, S.FAILED): running_to_failed_by_finalize,
    (S.RUNNING, S.STOPPED): running_to_stopped_by_drain,
    (S.RUNNING, S.QUEUED): running_to_queued_by_requeue,
    (S.WAITING_FOR_APPROVAL, S.QUEUED): waiting_to_queued_by_approval,
    (S.WAITING_FOR_APPROVAL, S.STOPPED): waiting_to_stopped_by_cancel,
    (S.STOPPING, S.STOPPED): stopping_to_stopped_by_worker,
}


def test_it_exercises_exactly_the_allowed_moves_table():
    table = {(src, dst) for src, targets in transitions.ALLOWED_MOVES.items() for dst in targets}
    assert set(ALLOWED) == table
    assert set(transitions.ALLOWED_MOVES) == set(ALL_STATUSES)


@pytest.mark.parametrize("move", list(ALLOWED), ids=lambda m: f"{m[0]}->{m[1]}")
def test_it_makes_each_allowed_move(move, user):
    turn = ALLOWED[move](user)
    turn.refresh_from_db()
    assert turn.status == move[1]
    assert last_status_event(turn)["status"] == move[1]
    if move[1] in TERMINAL_STATUSES:
        assert turn.finished_at is not None
        assert turn.lease_token is None
    assert interrupts(turn) == (1 if move[1] == S.STOPPED else 0)
    assert bool(turn.stop_reason) == (move[1] in (S.STOPPED, S.STOPPING))


def test_it_resumes_a_turn_whose_worker_died(user):
    turn, _ = running_turn(user)
    make_heartbeat_stale(turn)
    assert housekeeping.turns_reap_expired() == 1
    turn.refresh_from_db()
    assert turn.status == S.QUEUED
    assert turn.lease_token is None
    assert last_status_event(turn)["note"] == "worker lost; resuming"


def test_it_fails_a_turn_whose_worker_died_too_often(user, settings):
    settings.AGENT_MAX_ATTEMPTS = 1
    turn, _ = running_turn(user)
    make_heartbeat_stale(turn)
    housekeeping.turns_reap_expired()
    assert leases.turn_take_lease(turn_id=turn.pk, worker_id="second-worker")
    make_heartbeat_stale(turn)
    housekeeping.turns_reap_expired()
    turn.refresh_from_db()
    assert turn.status == S.FAILED
    assert turn.error_code == "worker_lost"


def test_it_stops_a_stopping_turn_whose_worker_died(user):
    turn, _ = stopping_turn(user)
    make_heartbeat_stale(turn)
    housekeeping.turns_reap_expired()
    turn.refresh_from_db()
    assert turn.status == S.STOPPED
    assert interrupts(turn) == 1


def test_it_queues_a_turn_after_a_rejection(user):
    turn, approval = waiting_turn(user)
    approval_services.approval_decide(
        approval_id=approval.pk, actor=user, approve=False, reason="no"
    )
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == S.QUEUED
    assert approval.status == ApprovalStatus.REJECTED and approval.reason == "no"


def test_it_stops_a_turn_whose_approval_expired(user):
    turn, approval = waiting_turn(user)
    type(approval).objects.filter(pk=approval.pk).update(expires_at=timezone.now())
    assert approval_services.approvals_expire() == 1
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == S.STOPPED
    assert turn.stop_reason == StopReason.APPROVAL_EXPIRED
    assert approval.status == ApprovalStatus.EXPIRED
    assert interrupts(turn) == 1


# Refused moves: every (from, to) pair outside the table, tried with the service that makes `to`.


def attempt(to: str, turn: Turn, owner) -> None:
    """Ask the service that moves a turn to ``to``; it may refuse with a service error."""
    lease = turn.lease_token
    try:
        if to == S.RUNNING:
            leases.turn_take_lease(turn_id=turn.pk, worker_id="intruder")
        elif to == S.WAITING_FOR_APPROVAL:
            lifecycle.turn_park_for_approval(
                turn_id=turn.pk,
                lease_token=lease,
                checkpoint={},
                calls=[{**EMAIL_CALL, "id": "call_refused"}],
            )
        elif to == S.STOPPING:
            lifecycle.turn_request_cancel(session=turn.session, actor=owner, turn_id=turn.pk)
        elif to == S.QUEUED:
            leases.turn_requeue(turn_id=turn.pk, lease_token=lease)
        else:
            lifecycle.turn_finalize(
                turn_id=turn.pk,
                status=to,
                lease_token=lease,
                stop_reason=StopReason.USER_CANCEL if to == S.STOPPED else "",
                error_code="llm_error" if to == S.FAILED else "",
            )
    except ServiceError:
        pass


# Refusals that still end in an allowed move: a cancel of a turn nobody is running stops it at
# once, and a stopping turn ends stopped whatever its worker reports.
REDIRECTS = {
    (S.PENDING, S.STOPPING): S.STOPPED,
    (S.QUEUED, S.STOPPING): S.STOPPED,
    (S.WAITING_FOR_APPROVAL, S.STOPPING): S.STOPPED,
    (S.STOPPING, S.COMPLETED): S.STOPPED,
    (S.STOPPING, S.FAILED): S.STOPPED,
}

# No service moves an existing turn into `pending`: a turn is only ever created pending.
REFUSED = [
    (src, dst)
    for src in ALL_STATUSES
    for dst in ALL_STATUSES
    if dst != src and dst != S.PENDING and dst not in transitions.ALLOWED_MOVES[src]
]


@pytest.mark.parametrize("move", REFUSED, ids=lambda m: f"{m[0]}-x->{m[1]}")
def test_it_refuses_each_move_outside_the_table(move, user):
    src, dst = move
    turn = turn_in(src, user)
    before = Turn.objects.get(pk=turn.pk)
    events_before = list(turn.events.order_by("seq").values_list("seq", "kind", "data"))
    approvals_before = turn.approval_requests.count()

    attempt(dst, turn, user)

    turn.refresh_from_db()
    expected = REDIRECTS.get(move, src)
    assert turn.status == expected
    if expected == src:
        assert list(turn.events.order_by("seq").values_list("seq", "kind", "data")) == (
            events_before
        )
        assert turn.approval_requests.count() == approvals_before
        assert turn.lease_token == before.lease_token
        assert turn.finished_at == before.finished_at
        assert turn.stop_reason == before.stop_reason
        assert turn.error_code == before.error_code
    else:
        assert expected in transitions.ALLOWED_MOVES[src]
        assert interrupts(turn) == 1
        assert turn.error_code == ""


@pytest.mark.parametrize("status", [S.COMPLETED, S.STOPPED, S.FAILED])
def test_it_never_changes_a_terminal_turn(status, user):
    turn = turn_in(status, user)
    before = Turn.objects.get(pk=turn.pk)
    seqs = list(turn.events.values_list("seq", flat=True))
    for target in ALL_STATUSES:
        attempt(target, turn, user)
    housekeeping.turns_reap_expired()
    turn.refresh_from_db()
    assert (turn.status, turn.finished_at, turn.stop_reason, turn.error_code) == (
        before.status,
        before.finished_at,
        before.stop_reason,
        before.error_code,
    )
    assert list(turn.events.values_list("seq", flat=True)) == seqs


@pytest.mark.parametrize("reported", [S.COMPLETED, S.FAILED])
def test_it_ends_a_stopping_turn_stopped_whatever_the_worker_reports(reported, user):
    turn, lease = stopping_turn(user)
    lifecycle.turn_finalize(
        turn_id=turn.pk,
        status=reported,
        lease_token=lease,
        error_code="llm_error",
        partial_text="Half a sentence",
    )
    turn.refresh_from_db()
    assert turn.status == S.STOPPED
    assert turn.stop_reason == StopReason.USER_CANCEL
    assert turn.error_code == ""
    assert interrupts(turn) == 1
    assert not turn.events.filter(kind=EventKind.ERROR).exists()
    assert turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"] == "Half a sentence"


def test_it_refuses_an_illegal_finalize_and_writes_nothing(user):
    turn = queued_turn(user)
    seqs = list(turn.events.values_list("seq", flat=True))
    with pytest.raises(errors.IllegalTransition):
        lifecycle.turn_finalize(turn_id=turn.pk, status=S.COMPLETED, partial_text="made up")
    turn.refresh_from_db()
    assert turn.status == S.QUEUED
    assert turn.finished_at is None
    assert list(turn.events.values_list("seq", flat=True)) == seqs


def test_it_refuses_a_decision_once_the_turn_is_no_longer_waiting(user):
    turn, approval = waiting_turn(user)
    lifecycle.turn_request_cancel(session=turn.session, actor=user)
    with pytest.raises(approval_errors.NotPending):
        approval_services.approval_decide(approval_id=approval.pk, actor=user, approve=True)
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == S.STOPPED
    assert approval.status == ApprovalStatus.CANCELLED
    assert not turn.events.filter(kind=EventKind.APPROVAL_DECIDED).exists()
