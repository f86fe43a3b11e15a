"""A message from a user over budget is refused, 429 budget_exceeded with when the budget starts
again, and nothing is queued: no turn, no event, no task for a worker. The chat page's composer
shows the refusal's detail, with that time."""

import pytest
from django.contrib.auth.models import Group
from django_q.models import OrmQ

from agentproj.vocabulary import BudgetUnit, TurnStatus
from sessions_app.core import budgets
from sessions_app.models import Budget, TimelineEvent, Turn, UsageRecord
from tests.turn_states import new_session, turn_in

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def over_budget(user) -> None:
    Budget.objects.create(user=user, unit=BudgetUnit.TOKENS, amount=2000, period="day")
    UsageRecord.objects.create(user=user, model="gpt-test", input_tokens=1500, output_tokens=500)


def test_a_message_over_budget_is_refused_and_nothing_is_queued(api, user):
    over_budget(user)
    session = new_session(user)
    events_before = TimelineEvent.objects.count()
    tasks_before = OrmQ.objects.count()

    answer = api.post(f"/api/sessions/{session.pk}/turns/", {"message": "hello"}, format="json")

    assert answer.status_code == 429
    body = answer.json()
    resets_at = budgets.budget_state(user_id=user.pk).resets_at
    assert body["code"] == "budget_exceeded"
    assert body["resets_at"] == resets_at.isoformat().replace("+00:00", "Z")
    assert f"{resets_at:%Y-%m-%d %H:%M}" in body["detail"]
    assert int(answer["Retry-After"]) > 0
    assert not Turn.objects.filter(session=session).exists()
    assert TimelineEvent.objects.count() == events_before
    assert OrmQ.objects.count() == tasks_before


def test_a_regenerate_over_budget_is_refused_too(api, user):
    turn = turn_in(TurnStatus.COMPLETED, user)
    over_budget(user)
    answer = api.post(f"/api/sessions/{turn.session_id}/turns/{turn.pk}/regenerate/", {})
    assert answer.status_code == 429
    assert answer.json()["code"] == "budget_exceeded"
    assert Turn.objects.filter(session=turn.session).count() == 1


def test_a_member_of_a_group_over_its_budget_is_refused(api, user):
    team = Group.objects.create(name="interns")
    user.groups.add(team)
    Budget.objects.create(group=team, unit=BudgetUnit.TOKENS, amount=100, period="month")
    UsageRecord.objects.create(user=user, model="gpt-test", input_tokens=60, output_tokens=40)
    session = new_session(user)
    answer = api.post(f"/api/sessions/{session.pk}/turns/", {"message": "hi"}, format="json")
    assert answer.status_code == 429
    assert answer.json()["code"] == "budget_exceeded"


def test_under_budget_a_message_is_accepted(api, user):
    Budget.objects.create(user=user, unit=BudgetUnit.TOKENS, amount=2000, period="day")
    UsageRecord.objects.create(user=user, model="gpt-test", input_tokens=1000, output_tokens=999)
    session = new_session(user)
    answer = api.post(f"/api/sessions/{session.pk}/turns/", {"message": "hi"}, format="json")
    assert answer.status_code == 202
