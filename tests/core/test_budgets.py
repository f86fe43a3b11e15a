"""Budgets: a user over their budget is refused until its period starts again; a group's budget
applies to each of its members; a user's own budget replaces their groups' and the default."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from agentproj.vocabulary import BudgetPeriod, BudgetUnit
from sessions_app.core import budgets
from sessions_app.core.errors import BudgetExceeded
from sessions_app.models import Budget, UsageRecord

pytestmark = pytest.mark.django_db

# A fixed moment to judge from (the clock moved, never slept): the 7th of December, 15:30 UTC.
NOW = datetime(2026, 12, 7, 15, 30, tzinfo=UTC)


def spend(user, tokens: int, *, at: datetime = NOW, cost: str | None = None) -> None:
    UsageRecord.objects.create(
        user=user,
        model="gpt-test",
        input_tokens=tokens // 2,
        output_tokens=tokens - tokens // 2,
        cost=None if cost is None else Decimal(cost),
        currency="" if cost is None else "USD",
        created_at=at - timedelta(minutes=1),
    )


def test_it_refuses_a_user_over_a_daily_token_budget_until_the_next_day(user):
    Budget.objects.create(user=user, unit=BudgetUnit.TOKENS, amount=2000, period=BudgetPeriod.DAY)
    spend(user, 1999)
    budgets.budget_check(user_id=user.pk, now=NOW)

    spend(user, 1)
    with pytest.raises(BudgetExceeded) as refused:
        budgets.budget_check(user_id=user.pk, now=NOW)
    assert refused.value.resets_at == datetime(2026, 12, 8, tzinfo=UTC)
    assert refused.value.extra() == {"resets_at": "2026-12-08T00:00:00Z"}
    assert "2026-12-08 00:00 UTC" in refused.value.detail

    # The next day, what was spent the day before no longer counts.
    budgets.budget_check(user_id=user.pk, now=refused.value.resets_at)
    state = budgets.budget_state(user_id=user.pk, now=refused.value.resets_at)
    assert state.standings[0].spent == 0
    assert state.standings[0].remaining == 2000


def test_a_monthly_money_budget_counts_the_cost_of_the_month_in_its_currency(user):
    Budget.objects.create(
        user=user, unit=BudgetUnit.MONEY, amount=Decimal("5"), currency="USD", period="month"
    )
    spend(user, 100, at=datetime(2026, 11, 30, 12, tzinfo=UTC), cost="4.00")
    spend(user, 100, at=datetime(2026, 12, 1, 12, tzinfo=UTC), cost="3.00")
    budgets.budget_check(user_id=user.pk, now=NOW)

    spend(user, 100, cost="2.00")
    with pytest.raises(BudgetExceeded) as refused:
        budgets.budget_check(user_id=user.pk, now=NOW)
    assert refused.value.resets_at == datetime(2027, 1, 1, tzinfo=UTC)


def test_a_group_budget_applies_to_each_member(user, other_user, django_user_model):
    team = Group.objects.create(name="interns")
    user.groups.add(team)
    other_user.groups.add(team)
    Budget.objects.create(group=team, unit=BudgetUnit.TOKENS, amount=1000, period="day")
    outsider = django_user_model.objects.create_user("dave", password="dave-password-1")
    for person in (user, other_user, outsider):
        spend(person, 1000)

    for member in (user, other_user):
        with pytest.raises(BudgetExceeded):
            budgets.budget_check(user_id=member.pk, now=NOW)
    # Each member spends against the budget on their own: one's spending is not another's.
    state = budgets.budget_state(user_id=user.pk, now=NOW)
    assert state.standings[0].spent == 1000
    assert state.standings[0].limit.source == "group interns"
    # Not a member: no budget, no limit.
    budgets.budget_check(user_id=outsider.pk, now=NOW)


def test_a_users_own_budget_replaces_their_groups_and_the_default(user, settings):
    settings.BUDGET_DEFAULT = "tokens=10/day"
    team = Group.objects.create(name="interns")
    user.groups.add(team)
    Budget.objects.create(group=team, unit=BudgetUnit.TOKENS, amount=100, period="day")
    Budget.objects.create(user=user, unit=BudgetUnit.TOKENS, amount=5000, period="day")
    spend(user, 1000)
    budgets.budget_check(user_id=user.pk, now=NOW)
    assert [
        standing.limit.source for standing in budgets.budget_state(user_id=user.pk).standings
    ] == ["your own"]


def test_the_default_budget_applies_to_everyone_without_one(user, settings):
    settings.BUDGET_DEFAULT = "tokens=500/day"
    spend(user, 500)
    with pytest.raises(BudgetExceeded):
        budgets.budget_check(user_id=user.pk, now=NOW)
    settings.BUDGET_DEFAULT = ""
    budgets.budget_check(user_id=user.pk, now=NOW)
