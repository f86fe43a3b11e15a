"""``BUDGET_DEFAULT``: the usage budget of every user the admin gives none (DESIGN §6b).

``tokens=<n>/<day|month>`` counts input and output tokens; ``<currency>=<amount>/<day|month>``
(``usd=20/month``) counts what the calls cost in that currency, at the admin's model prices.
Read when the settings load, so a deployment with a wrong value does not start.
"""

import re
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ImproperlyConfigured

from agentproj.vocabulary import BudgetPeriod, BudgetUnit

_SPEC = re.compile(r"([A-Za-z]+)=(\d+(?:\.\d+)?)/(day|month)")
_TOKENS = "tokens"
_CURRENCY = re.compile(r"[A-Za-z]{3}")


@dataclass(frozen=True)
class BudgetSpec:
    unit: str
    amount: Decimal
    period: str
    # The ISO 4217 code of a money budget; "" for tokens.
    currency: str = ""


def parse(text: str) -> BudgetSpec | None:
    """The budget ``text`` says, None for none (empty); ``ImproperlyConfigured`` when it says
    nothing this understands."""
    text = text.replace(" ", "")
    if not text:
        return None
    match = _SPEC.fullmatch(text)
    if match is None:
        raise ImproperlyConfigured(
            f"BUDGET_DEFAULT={text!r}: expected tokens=<n>/<day|month> or "
            "<currency>=<amount>/<day|month>, e.g. tokens=200000/day or usd=20/month"
        )
    key, amount, period = match.groups()
    if key.lower() == _TOKENS:
        if "." in amount:
            raise ImproperlyConfigured(f"BUDGET_DEFAULT={text!r}: tokens are a whole number")
        return BudgetSpec(
            unit=BudgetUnit.TOKENS, amount=Decimal(amount), period=BudgetPeriod(period)
        )
    if not _CURRENCY.fullmatch(key):
        raise ImproperlyConfigured(
            f"BUDGET_DEFAULT={text!r}: {key!r} is neither tokens nor a three-letter currency code"
        )
    return BudgetSpec(
        unit=BudgetUnit.MONEY,
        amount=Decimal(amount),
        period=BudgetPeriod(period),
        currency=key.upper(),
    )
