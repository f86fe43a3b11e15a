"""What a model call costs is its tokens times the admin's price for its model, recorded with the
call; a turn's cost, the sum of its calls', is known when it ends and shown in its usage line."""

from decimal import Decimal

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from sessions_app.core import lifecycle, usage
from sessions_app.core.prices import price_for
from sessions_app.models import ModelPrice, UsageRecord
from tests.turn_states import running_turn

pytestmark = pytest.mark.django_db


def record(turn, lease, call: usage.CallUsage, turn_usage: dict) -> UsageRecord:
    call.add_to(turn_usage)
    return usage.model_call_record(
        turn_id=turn.pk, lease_token=lease, call=call, turn_usage=turn_usage
    )


def test_a_calls_cost_is_its_tokens_times_the_price_and_the_turns_cost_their_sum(user):
    ModelPrice.objects.create(
        model="gpt-test", input_price=Decimal("2.50"), output_price=Decimal("10"), currency="EUR"
    )
    turn, lease = running_turn(user)
    turn_usage: dict = {}
    first = record(turn, lease, usage.CallUsage("gpt-test", 1_000_000, 200_000), turn_usage)
    second = record(turn, lease, usage.CallUsage("gpt-test", 4_000, 600), turn_usage)

    assert first.cost == Decimal("2.50") + Decimal("2.00")
    assert second.cost == Decimal("0.01") + Decimal("0.006")
    assert first.currency == "EUR" and first.user_id == user.pk

    lifecycle.turn_finalize(turn_id=turn.pk, status=TurnStatus.COMPLETED, lease_token=lease)
    turn.refresh_from_db()
    assert turn.usage == {
        "prompt_tokens": 1_004_000,
        "completion_tokens": 200_600,
        "cost": "4.516000",
        "currency": "EUR",
    }
    final = turn.events.filter(kind=EventKind.STATUS).last()
    assert final.data["usage"]["cost"] == "4.516000"


def test_a_turn_with_an_unpriced_call_shows_no_cost(user):
    ModelPrice.objects.create(model="gpt-test", input_price=1, output_price=1)
    turn, lease = running_turn(user)
    turn_usage: dict = {}
    record(turn, lease, usage.CallUsage("gpt-test", 100, 10), turn_usage)
    record(turn, lease, usage.CallUsage("other-model", 100, 10), turn_usage)
    lifecycle.turn_finalize(turn_id=turn.pk, status=TurnStatus.COMPLETED, lease_token=lease)
    turn.refresh_from_db()
    assert "cost" not in turn.usage


def test_an_exact_model_name_wins_over_patterns_and_the_longest_pattern_over_others():
    ModelPrice.objects.create(model="gpt-*", input_price=1, output_price=1)
    ModelPrice.objects.create(model="gpt-4o*", input_price=2, output_price=2)
    ModelPrice.objects.create(model="gpt-4o-mini", input_price=3, output_price=3)
    assert price_for("gpt-4o-mini").input_price == 3
    assert price_for("gpt-4o-2024").input_price == 2
    assert price_for("gpt-3.5").input_price == 1
    assert price_for("llama") is None
