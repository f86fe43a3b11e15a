"""BUDGET_DEFAULT is read as the contract spells it, and a value it cannot read stops the start
instead of leaving everyone without a limit."""

from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from agentproj.budget_default import BudgetSpec, parse


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("", None),
        ("tokens=200000/day", BudgetSpec(unit="tokens", amount=Decimal(200000), period="day")),
        (
            "usd=20/month",
            BudgetSpec(unit="money", amount=Decimal(20), period="month", currency="USD"),
        ),
        (
            " EUR = 7.5 / day ",
            BudgetSpec(unit="money", amount=Decimal("7.5"), period="day", currency="EUR"),
        ),
    ],
)
def test_it_reads_a_budget(text, spec):
    assert parse(text) == spec


@pytest.mark.parametrize(
    "text", ["tokens=200000", "tokens=1.5/day", "dollars=20/month", "usd=20/week", "usd=-1/day"]
)
def test_it_refuses_what_it_cannot_read(text):
    with pytest.raises(ImproperlyConfigured):
        parse(text)
