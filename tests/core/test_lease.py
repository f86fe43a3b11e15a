"""A worker whose lease was taken over writes nothing: every write with a stale token is refused
with ``LeaseLost``, and the new owner's writes go through."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import errors, housekeeping, leases, lifecycle
from sessions_app.models import Turn
from tests.turn_states import EMAIL_CALL, TEST_WORKER, running_turn

pytestmark = pytest.mark.django_db


def reaped_and_released(turn: Turn) -> None:
    """The first worker stops heartbeating; the reaper requeues the turn."""
    stale = timezone.now() - timedelta(seconds=settings.AGENT_LEASE_TIMEOUT + 5)
    Turn.objects.filter(pk=turn.pk).update(heartbeat_at=stale)
    assert housekeeping.turns_reap_expired(session_id=turn.session_id) == 1


def requeued(turn: Turn, lease) -> None:
    """The first worker drains in requeue mode."""
    assert leases.turn_requeue(turn_id=turn.pk, lease_token=lease)


@pytest.fixture(params=[reaped_and_released, requeued], ids=["reaped", "requeued"])
def taken_over(request, user):
    """(turn, stale lease, current lease): the turn was released and re-leased elsewhere."""
    turn, old_lease = running_turn(user)
    leases.turn_save_progress(
        turn_id=turn.pk, lease_token=old_lease, checkpoint={"step": 1}, usage={"total": 10}
    )
    if request.param is requeued:
        requeued(turn, old_lease)
    else:
        reaped_and_released(turn)
    new_lease = leases.turn_take_lease(turn_id=turn.pk, worker_id="second-worker")
    assert new_lease is not None and new_lease != old_lease
    turn.refresh_from_db()
    return turn, old_lease, new_lease


def snapshot(turn: Turn):
    turn.refresh_from_db()
    rows = list(turn.session.events.order_by("seq").values_list("seq", "kind", "data"))
    return (
        turn.status,
        turn.checkpoint,
        turn.usage,
        turn.lease_token,
        turn.worker_id,
        turn.finished_at,
        rows,
        turn.approval_requests.count(),
        turn.children.count(),
    )


STALE_WRITES = {
    "save_progress": lambda turn, lease: leases.turn_save_progress(
        turn_id=turn.pk,
        lease_token=lease,
        checkpoint={"step": "stale"},
        usage={"total": 999},
        assistant_text="stale text",
    ),
    "record_event": lambda turn, lease: leases.turn_record_event(
        turn_id=turn.pk, lease_token=lease, kind=EventKind.TOOL_RESULT, data={"result": "stale"}
    ),
    "finalize": lambda turn, lease: lifecycle.turn_finalize(
        turn_id=turn.pk, status=TurnStatus.COMPLETED, lease_token=lease, partial_text="stale"
    ),
    "park_for_approval": lambda turn, lease: lifecycle.turn_park_for_approval(
        turn_id=turn.pk, lease_token=lease, checkpoint={"step": "stale"}, calls=[EMAIL_CALL]
    ),
    "requeue": lambda turn, lease: leases.turn_requeue(turn_id=turn.pk, lease_token=lease),
    "child_turn_start": lambda turn, lease: lifecycle.child_turn_start(
        parent_id=turn.pk, lease_token=lease, task="stale"
    ),
}


@pytest.mark.parametrize("write", list(STALE_WRITES))
def test_it_refuses_a_write_with_a_stale_lease_and_writes_nothing(write, taken_over):
    turn, old_lease, _ = taken_over
    before = snapshot(turn)
    with pytest.raises(errors.LeaseLost):
        STALE_WRITES[write](turn, old_lease)
    assert snapshot(turn) == before
    assert turn.status == TurnStatus.RUNNING


def test_it_refuses_a_stale_heartbeat(taken_over):
    """The first host's batched heartbeat no longer reaches a turn taken over elsewhere."""
    turn, _, _ = taken_over
    heartbeat = turn.heartbeat_at
    assert leases.turns_heartbeat(worker_id=TEST_WORKER, turn_ids=[turn.pk]) == 0
    turn.refresh_from_db()
    assert turn.heartbeat_at == heartbeat


def test_it_refreshes_every_lease_a_host_holds_in_one_call(user):
    turns = [running_turn(user)[0] for _ in range(3)]
    stale = timezone.now() - timedelta(seconds=settings.AGENT_LEASE_TIMEOUT + 5)
    Turn.objects.filter(pk__in=[t.pk for t in turns]).update(heartbeat_at=stale)

    assert leases.turns_heartbeat(worker_id=TEST_WORKER, turn_ids=[t.pk for t in turns]) == 3

    assert not Turn.objects.filter(pk__in=[t.pk for t in turns], heartbeat_at=stale).exists()


def test_it_does_not_refresh_a_lease_whose_turn_the_host_no_longer_runs(user):
    """A run that ended without releasing its lease (its last write failed) leaves the host's
    id on the turn; the heartbeat passes it over, so the reaper takes the turn over."""
    still_run, abandoned = (running_turn(user)[0] for _ in range(2))
    stale = timezone.now() - timedelta(seconds=settings.AGENT_LEASE_TIMEOUT + 5)
    Turn.objects.filter(pk__in=[still_run.pk, abandoned.pk]).update(heartbeat_at=stale)

    assert leases.turns_heartbeat(worker_id=TEST_WORKER, turn_ids=[still_run.pk]) == 1

    assert housekeeping.turns_reap_expired() == 1
    abandoned.refresh_from_db()
    still_run.refresh_from_db()
    assert abandoned.status == TurnStatus.QUEUED
    assert abandoned.worker_losses == 1
    assert still_run.status == TurnStatus.RUNNING


def test_it_accepts_the_writes_of_the_current_owner(taken_over):
    turn, _, new_lease = taken_over
    event = leases.turn_save_progress(
        turn_id=turn.pk, lease_token=new_lease, checkpoint={"step": 2}, assistant_text="fresh"
    )
    lifecycle.turn_finalize(
        turn_id=turn.pk,
        status=TurnStatus.COMPLETED,
        lease_token=new_lease,
        assistant_event_id=event.pk,
        partial_text="fresh and done",
    )
    turn.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    assert turn.checkpoint == {"step": 2}
    assert turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data["text"] == "fresh and done"


def test_it_refuses_a_write_once_the_turn_is_parked(user):
    turn, lease = running_turn(user)
    lifecycle.turn_park_for_approval(
        turn_id=turn.pk, lease_token=lease, checkpoint={"step": 1}, calls=[EMAIL_CALL]
    )
    before = snapshot(turn)
    with pytest.raises(errors.LeaseLost):
        leases.turn_save_progress(turn_id=turn.pk, lease_token=lease, assistant_text="late")
    with pytest.raises(errors.LeaseLost):
        lifecycle.turn_finalize(turn_id=turn.pk, status=TurnStatus.COMPLETED, lease_token=lease)
    assert snapshot(turn) == before
    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
