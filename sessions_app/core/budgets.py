"""Budgets (DESIGN §6b): what a user may still spend this day or this month, the refusal of a
message from a user over budget, and how much a running model call may spend before its turn is
stopped.

A user's own budget row replaces every other; without one, each budget of their groups applies
to them (the first one used up stops them); without any, ``BUDGET_DEFAULT``. Periods are
calendar days and months in ``TIME_ZONE``. What is spent is summed from the usage records in one
query (indexed by user and time), whatever the number of budgets.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import F, Q, Sum
from django.utils import timezone

from agentproj import budget_default
from agentproj.vocabulary import BudgetPeriod, BudgetUnit
from sessions_app.core import prices
from sessions_app.core.errors import BudgetExceeded
from sessions_app.models import Budget, UsageRecord


@dataclass(frozen=True)
class Limit:
    unit: str
    amount: Decimal
    period: str
    currency: str = ""
    # Where it comes from, for people: "your own", "group <name>", "the default".
    source: str = ""


@dataclass(frozen=True)
class Standing:
    """A limit and what the user spent against it in its current period."""

    limit: Limit
    spent: Decimal
    resets_at: datetime

    @property
    def remaining(self) -> Decimal:
        return max(Decimal(0), self.limit.amount - self.spent)

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.limit.amount

    def crossed_by(self, *, tokens: int, cost: Decimal | None, currency: str) -> bool:
        """Whether spending ``tokens`` more (costing ``cost`` in ``currency``) uses it up."""
        if self.limit.unit == BudgetUnit.TOKENS:
            return self.spent + tokens >= self.limit.amount
        if cost is None or currency != self.limit.currency:
            return False
        return self.spent + cost >= self.limit.amount


@dataclass(frozen=True)
class BudgetState:
    standings: tuple[Standing, ...] = ()

    @property
    def exhausted(self) -> bool:
        return any(standing.exhausted for standing in self.standings)

    @property
    def resets_at(self) -> datetime | None:
        """When every used-up budget has started a new period (None when none is used up)."""
        ends = [standing.resets_at for standing in self.standings if standing.exhausted]
        return max(ends) if ends else None


@dataclass(frozen=True)
class CallAllowance:
    """What one model call may spend: the owner's budgets as the call starts, and its model's
    price (None: unpriced, so only token budgets stop it)."""

    state: BudgetState
    price: prices.Price | None

    def crossed_by(self, *, input_tokens: int, output_tokens: int) -> bool:
        cost = (
            None
            if self.price is None
            else self.price.cost(input_tokens=input_tokens, output_tokens=output_tokens)
        )
        currency = self.price.currency if self.price else ""
        return any(
            standing.crossed_by(tokens=input_tokens + output_tokens, cost=cost, currency=currency)
            for standing in self.state.standings
        )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The start of the day or month ``now`` is in, and the start of the next one."""
    today = timezone.localtime(now).date()
    if period == BudgetPeriod.DAY:
        return _midnight(today), _midnight(today + timedelta(days=1))
    first = today.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return _midnight(first), _midnight(following)


def _of_row(row: Budget) -> Limit:
    return Limit(
        unit=row.unit,
        amount=row.amount,
        period=row.period,
        currency=row.currency,
        source="your own" if row.user_id else f"group {row.group.name}",
    )


def limits_for(user_id: int) -> list[Limit]:
    """The limits that apply to the user, in one query."""
    rows = list(
        Budget.objects.filter(Q(user_id=user_id) | Q(group__user=user_id)).select_related("group")
    )
    own = [row for row in rows if row.user_id == user_id]
    if own:
        return [_of_row(own[0])]
    if rows:
        return [_of_row(row) for row in sorted(rows, key=lambda row: row.pk)]
    default = budget_default.parse(settings.BUDGET_DEFAULT)
    if default is None:
        return []
    return [
        Limit(
            unit=default.unit,
            amount=default.amount,
            period=default.period,
            currency=default.currency,
            source="the default",
        )
    ]


def budget_state(*, user_id: int, now: datetime | None = None) -> BudgetState:
    """The user's budgets and what they spent against each, as of ``now``."""
    now = now or timezone.now()
    limits = limits_for(user_id)
    if not limits:
        return BudgetState()
    bounds = [period_bounds(limit.period, now) for limit in limits]
    sums = {}
    for index, (limit, (start, _)) in enumerate(zip(limits, bounds, strict=True)):
        in_period = Q(created_at__gte=start)
        if limit.unit == BudgetUnit.TOKENS:
            sums[f"spent_{index}"] = Sum(F("input_tokens") + F("output_tokens"), filter=in_period)
        else:
            sums[f"spent_{index}"] = Sum("cost", filter=in_period & Q(currency=limit.currency))
    totals = UsageRecord.objects.filter(
        user_id=user_id, created_at__gte=min(start for start, _ in bounds)
    ).aggregate(**sums)
    return BudgetState(
        tuple(
            Standing(limit=limit, spent=Decimal(totals[f"spent_{index}"] or 0), resets_at=end)
            for index, (limit, (_, end)) in enumerate(zip(limits, bounds, strict=True))
        )
    )


def budget_check(*, user_id: int, now: datetime | None = None) -> None:
    """Refuse (``BudgetExceeded``) a user who has used up a budget of theirs."""
    state = budget_state(user_id=user_id, now=now)
    if state.exhausted:
        raise BudgetExceeded(resets_at=state.resets_at)


def call_allowance(*, user_id: int, model: str) -> CallAllowance:
    return CallAllowance(state=budget_state(user_id=user_id), price=prices.price_for(model))
