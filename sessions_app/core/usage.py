"""Usage records: each model call's tokens, whose they are and what they cost (the one writer of
``UsageRecord``), a turn's cost once it ends, and the usage report of the API and the page."""

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from sessions_app.core import prices
from sessions_app.core.locks import lock_worker_turn, require_lease
from sessions_app.models import UsageRecord

# Without a tokenizer for every model a server may run, an estimate takes a token for every four
# characters, about what tokenizers give English prose; it is marked as an estimate wherever it
# is shown.
CHARS_PER_TOKEN = 4

GROUPINGS = ("user", "agent", "model", "day")


def estimate_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class CallUsage:
    """One model call's tokens, as its server reported them or as estimated."""

    model: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    estimated: bool = False

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add_to(self, turn_usage: dict[str, Any]) -> None:
        """Count the call in a turn's ``usage`` (the keys its usage line reads)."""
        for key, value in (
            ("prompt_tokens", self.input_tokens),
            ("completion_tokens", self.output_tokens),
            ("cached_tokens", self.cached_tokens),
        ):
            if value:
                turn_usage[key] = turn_usage.get(key, 0) + value
        if self.estimated:
            turn_usage["estimated"] = True


def model_call_record(
    *, turn_id: int, lease_token, call: CallUsage, turn_usage: dict[str, Any]
) -> UsageRecord:
    """Record a model call of the turn for the session's owner (a sub-agent's turn is in its
    parent's session, so its calls count for the same person), priced now, and the turn's usage
    so far (``turn_usage``, with the call counted), fenced by the worker's lease."""
    price = prices.price_for(call.model)
    with transaction.atomic():
        session, turn = lock_worker_turn(turn_id)
        require_lease(turn, lease_token)
        record = UsageRecord.objects.create(
            user_id=session.owner_id,
            turn=turn,
            agent_id=turn.agent_id,
            agent_name=str(turn.agent_snapshot.get("name") or "")[:100],
            model=call.model[:200],
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cached_tokens=call.cached_tokens,
            estimated=call.estimated,
            cost=None
            if price is None
            else price.cost(input_tokens=call.input_tokens, output_tokens=call.output_tokens),
            currency="" if price is None else price.currency,
        )
        turn.usage = turn_usage
        turn.save(update_fields=["usage"])
    return record


def format_cost(cost: Decimal) -> str:
    """A cost as the API gives it: six decimals, a millionth of a unit."""
    return f"{cost:.6f}"


def readable_cost(cost: Decimal | str) -> str:
    """A cost as people read it: at least two decimals, at most six (0.50, 0.001234)."""
    whole, _, fraction = format_cost(Decimal(cost)).partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


def turn_cost(turn_id: int) -> dict[str, str]:
    """What a turn's model calls cost, ``{"cost", "currency"}``, when each has a price and all
    in one currency; else nothing (a cost that leaves calls out would mislead)."""
    totals = UsageRecord.objects.filter(turn_id=turn_id).aggregate(
        total=Sum("cost"),
        calls=Count("pk"),
        priced=Count("cost"),
        currencies=Count("currency", distinct=True),
        some_currency=Max("currency"),
    )
    if not totals["calls"] or totals["priced"] != totals["calls"] or totals["currencies"] != 1:
        return {}
    return {"cost": format_cost(totals["total"]), "currency": totals["some_currency"]}


@dataclass(frozen=True)
class UsageRow:
    key: str
    # The user's id, in a report by user.
    user_id: int | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    calls: int
    # Calls whose tokens are estimates.
    estimated_calls: int
    # What the priced calls cost, None when none is priced or their currencies differ.
    cost: Decimal | None
    currency: str

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def period_of_days(start: date, end: date) -> tuple[datetime, datetime]:
    """The instants from the start of ``start`` to the end of ``end`` in ``TIME_ZONE``."""
    zone = timezone.get_current_timezone()
    return (
        datetime.combine(start, time.min, tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone),
    )


def usage_report(
    *, start: date, end: date, group_by: str, user_id: int | None = None
) -> list[UsageRow]:
    """Tokens and cost from ``start`` to ``end`` (days in ``TIME_ZONE``, both included), of one
    user or (``user_id`` None) everyone, a row per user, agent, model or day. One query."""
    if group_by not in GROUPINGS:
        raise ValueError(group_by)
    since, until = period_of_days(start, end)
    records = UsageRecord.objects.filter(created_at__gte=since, created_at__lt=until)
    if user_id is not None:
        records = records.filter(user_id=user_id)
    key = {
        "user": f"user__{get_user_model().USERNAME_FIELD}",
        "agent": "agent_name",
        "model": "model",
        "day": "day",
    }[group_by]
    if group_by == "day":
        zone = timezone.get_current_timezone()
        records = records.annotate(day=TruncDate("created_at", tzinfo=zone))
    keys = [key, "user_id"] if group_by == "user" else [key]
    totals = (
        records.values(*keys)
        .annotate(
            sum_input=Sum("input_tokens"),
            sum_output=Sum("output_tokens"),
            sum_cached=Sum("cached_tokens"),
            calls=Count("pk"),
            estimated_calls=Count("pk", filter=Q(estimated=True)),
            sum_cost=Sum("cost"),
            currencies=Count("currency", distinct=True, filter=~Q(currency="")),
            some_currency=Max("currency"),
        )
        .order_by(key)
    )
    return [
        UsageRow(
            key=str(row[key]),
            user_id=row.get("user_id"),
            input_tokens=row["sum_input"] or 0,
            output_tokens=row["sum_output"] or 0,
            cached_tokens=row["sum_cached"] or 0,
            calls=row["calls"],
            estimated_calls=row["estimated_calls"],
            cost=row["sum_cost"] if row["currencies"] == 1 else None,
            currency=row["some_currency"] if row["currencies"] == 1 else "",
        )
        for row in totals
    ]
