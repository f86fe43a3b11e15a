"""Cancel and approve arriving at the same moment: one of two legal outcomes, every time."""

from functools import partial

import pytest
from django.core import mail

from agentproj.vocabulary import EventKind, StopReason, TurnStatus
from approvals_app import errors as approval_errors
from approvals_app import services as approval_services
from approvals_app.models import ApprovalStatus
from sessions_app.core import lifecycle, sessions
from tests.turn_states import interrupts, race

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

ROUNDS = 20


def test_it_never_runs_the_tool_after_a_stop_whoever_wins(
    llm, user, approver, run_turn_in_thread, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    session = sessions.session_create(owner=user)
    winners = {"cancel": 0, "approve": 0}
    for _ in range(ROUNDS):
        turn = lifecycle.turn_start(
            session=session, message="please send an email to x@example.com", actor=user
        )
        assert run_turn_in_thread(turn.pk).join() == TurnStatus.WAITING_FOR_APPROVAL
        approval = turn.approval_requests.get()

        cancelled, decided = race(
            partial(lifecycle.turn_request_cancel, session=session, actor=user, turn_id=turn.pk),
            partial(
                approval_services.approval_decide,
                approval_id=approval.pk,
                actor=approver,
                approve=True,
            ),
        )

        # Either way the cancel stops the turn: while it waits (the approval is withdrawn) or
        # once the approval queued it (a queued turn stops at once, before any worker runs it).
        assert cancelled[0] == "ok", cancelled
        assert cancelled[1].status == TurnStatus.STOPPED
        turn.refresh_from_db()
        approval.refresh_from_db()
        assert turn.status == TurnStatus.STOPPED
        assert turn.stop_reason == StopReason.USER_CANCEL
        assert interrupts(turn) == 1
        if decided[0] == "error":
            assert isinstance(decided[1], approval_errors.NotPending), decided
            assert approval.status == ApprovalStatus.CANCELLED
            assert approval.decided_by is None
            assert not turn.events.filter(kind=EventKind.APPROVAL_DECIDED).exists()
            winners["cancel"] += 1
        else:
            assert approval.status == ApprovalStatus.APPROVED
            assert approval.decided_by == approver
            assert turn.events.filter(kind=EventKind.APPROVAL_DECIDED).count() == 1
            winners["approve"] += 1

        # The resume task the approval enqueued arrives after the stop: it does nothing.
        assert run_turn_in_thread(turn.pk).join() == "skipped"
        turn.refresh_from_db()
        approval.refresh_from_db()
        assert turn.status == TurnStatus.STOPPED
        assert interrupts(turn) == 1
        assert approval.executed_at is None
        assert not turn.events.filter(kind=EventKind.TOOL_RESULT).exists()

    assert mail.outbox == []
    assert sum(winners.values()) == ROUNDS
    print(f"race winners over {ROUNDS} rounds: {winners}")
