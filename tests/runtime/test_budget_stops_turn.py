"""A turn whose streamed answer uses up its user's budget is stopped as a user's stop would: the
stream closed, its text so far kept, one interrupt notice saying why; the next message is
refused until the budget's period starts again; a sub-agent's spending stops its parent."""

import pytest
from django.contrib.auth.models import Group

from agentproj.vocabulary import BudgetUnit, EventKind, StopReason, TurnStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.core.errors import BudgetExceeded
from sessions_app.models import Budget, Turn, UsageRecord
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

PIECE = "word "
BUDGET_TOKENS = 3000


def test_a_streaming_turn_that_crosses_the_budget_stops_with_its_text_and_one_notice(
    llm, user, run_turn_in_thread
):
    Budget.objects.create(user=user, unit=BudgetUnit.TOKENS, amount=BUDGET_TOKENS, period="day")
    # An answer that would never end: only the budget stops it.
    llm.stream_text(PIECE)
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="go on forever", actor=user)

    assert run_turn_in_thread(turn.pk).join() == TurnStatus.STOPPED

    turn.refresh_from_db()
    assert turn.stop_reason == StopReason.BUDGET_EXHAUSTED
    assert turn.error_code == ""
    notices = list(turn.events.filter(kind=EventKind.INTERRUPT))
    assert len(notices) == 1
    assert notices[0].data["reason"] == StopReason.BUDGET_EXHAUSTED
    assert "budget" in notices[0].data["text"]
    assert not turn.events.filter(kind=EventKind.ERROR).exists()
    kept = turn.events.get(kind=EventKind.ASSISTANT_MESSAGE).data
    assert kept["streaming"] is False
    assert kept["text"].startswith(PIECE) and kept["text"] == PIECE * (len(kept["text"]) // 5)

    # The stream was closed by us, once what it used reached the budget.
    wait_for(lambda: llm.requests[0].closed_by_client_at)
    assert len(llm.requests) == 1
    call = UsageRecord.objects.get(turn=turn)
    assert call.estimated is True
    assert call.input_tokens + call.output_tokens >= BUDGET_TOKENS

    with pytest.raises(BudgetExceeded):
        lifecycle.turn_start(session=session, message="and now?", actor=user)
    assert Turn.objects.filter(session=session).count() == 1


def test_a_group_budget_stops_its_members_turn(llm, user, run_turn_in_thread):
    team = Group.objects.create(name="interns")
    user.groups.add(team)
    Budget.objects.create(group=team, unit=BudgetUnit.TOKENS, amount=BUDGET_TOKENS, period="day")
    llm.stream_text(PIECE)
    session = sessions.session_create(owner=user)
    turn = lifecycle.turn_start(session=session, message="go on forever", actor=user)
    assert run_turn_in_thread(turn.pk).join() == TurnStatus.STOPPED
    turn.refresh_from_db()
    assert turn.stop_reason == StopReason.BUDGET_EXHAUSTED


def test_a_sub_agent_that_uses_up_the_budget_stops_its_parent_turn(llm, user, run_turn_in_thread):
    Budget.objects.create(user=user, unit=BudgetUnit.TOKENS, amount=BUDGET_TOKENS, period="day")
    session = sessions.session_create(owner=user)
    parent = lifecycle.turn_start(session=session, message="delegate go on forever", actor=user)
    # The parent's call delegates (the demo model's answer); the sub-agent's never ends.
    llm.queue.append(llm.next_behaviour())
    llm.stream_text(PIECE)

    assert run_turn_in_thread(parent.pk).join() == TurnStatus.STOPPED

    parent.refresh_from_db()
    child = Turn.objects.get(parent=parent)
    assert parent.stop_reason == StopReason.BUDGET_EXHAUSTED
    assert child.status == TurnStatus.STOPPED
    assert child.stop_reason == StopReason.PARENT_STOPPED
    assert set(UsageRecord.objects.values_list("user_id", flat=True)) == {user.pk}
