"""Finalizing is idempotent: one interrupt notice, and a terminal status that never changes."""

import pytest

from agentproj.vocabulary import TERMINAL_STATUSES, EventKind, StopReason, TurnStatus
from approvals_app.models import ApprovalStatus
from sessions_app.core import lifecycle
from sessions_app.models import Turn
from tests.turn_states import interrupts, race, running_turn, stopping_turn, waiting_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

ROUNDS = 5


def terminal_status_events(turn: Turn) -> list[str]:
    return [
        e.data["status"]
        for e in turn.events.filter(kind=EventKind.STATUS)
        if e.data["status"] in TERMINAL_STATUSES
    ]


def test_it_finalizes_a_stopped_turn_only_once(user):
    turn, lease = stopping_turn(user)
    first = lifecycle.turn_finalize(
        turn_id=turn.pk, status=TurnStatus.STOPPED, lease_token=lease, partial_text="Once upon"
    )
    seqs = list(turn.events.values_list("seq", flat=True))

    second = lifecycle.turn_finalize(
        turn_id=turn.pk,
        status=TurnStatus.FAILED,
        lease_token=lease,
        error_code="llm_error",
        partial_text="Once upon a time, overwritten",
    )

    turn.refresh_from_db()
    assert first.status == second.status == turn.status == TurnStatus.STOPPED
    assert turn.finished_at == first.finished_at
    assert turn.error_code == ""
    assert interrupts(turn) == 1
    assert list(turn.events.values_list("seq", flat=True)) == seqs
    assert turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data == {
        "text": "Once upon",
        "streaming": False,
    }


def test_it_keeps_a_completed_turn_completed_when_stopped_afterwards(user):
    turn, lease = running_turn(user)
    lifecycle.turn_finalize(turn_id=turn.pk, status=TurnStatus.COMPLETED, lease_token=lease)
    lifecycle.turn_finalize(
        turn_id=turn.pk, status=TurnStatus.STOPPED, stop_reason=StopReason.USER_CANCEL
    )
    turn.refresh_from_db()
    assert turn.status == TurnStatus.COMPLETED
    assert interrupts(turn) == 0
    assert terminal_status_events(turn) == [TurnStatus.COMPLETED]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_it_writes_one_notice_when_two_threads_finalize_at_once(round_, user):
    turn, lease = stopping_turn(user)

    def finalize():
        return lifecycle.turn_finalize(
            turn_id=turn.pk, status=TurnStatus.STOPPED, lease_token=lease
        ).status

    outcomes = race(finalize, finalize)

    assert outcomes == [("ok", TurnStatus.STOPPED), ("ok", TurnStatus.STOPPED)]
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert interrupts(turn) == 1
    assert terminal_status_events(turn) == [TurnStatus.STOPPED]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_it_keeps_the_first_of_two_different_racing_endings(round_, user):
    turn, lease = running_turn(user)

    def finalize(status):
        return lambda: (
            lifecycle.turn_finalize(
                turn_id=turn.pk,
                status=status,
                lease_token=lease,
                stop_reason=StopReason.WORKER_DRAIN if status == TurnStatus.STOPPED else "",
            ).status
        )

    outcomes = race(finalize(TurnStatus.STOPPED), finalize(TurnStatus.COMPLETED))

    turn.refresh_from_db()
    assert [kind for kind, _ in outcomes] == ["ok", "ok"]
    # Both callers are told the one ending that stuck.
    assert {value for _, value in outcomes} == {turn.status}
    assert turn.status in (TurnStatus.STOPPED, TurnStatus.COMPLETED)
    assert terminal_status_events(turn) == [turn.status]
    assert interrupts(turn) == (1 if turn.status == TurnStatus.STOPPED else 0)


def test_it_cancels_pending_approvals_of_a_finalized_turn(user):
    turn, approval = waiting_turn(user)
    lifecycle.turn_finalize(
        turn_id=turn.pk, status=TurnStatus.STOPPED, stop_reason=StopReason.USER_CANCEL
    )
    lifecycle.turn_finalize(turn_id=turn.pk, status=TurnStatus.STOPPED)
    turn.refresh_from_db()
    approval.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert approval.status == ApprovalStatus.CANCELLED
    assert interrupts(turn) == 1


def test_it_stops_a_running_child_turn_with_its_parent(user):
    turn, lease = running_turn(user)
    child = lifecycle.child_turn_start(parent_id=turn.pk, lease_token=lease, task="look it up")
    lifecycle.turn_request_cancel(session=turn.session, actor=user)
    lifecycle.turn_finalize(turn_id=turn.pk, status=TurnStatus.STOPPED, lease_token=lease)
    child.refresh_from_db()
    assert child.status == TurnStatus.STOPPED
    assert child.stop_reason == StopReason.PARENT_STOPPED
    assert interrupts(child) == 1
