"""Model prices (admin rows, ``ModelPrice``) and what a call costs at them."""

from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase

from sessions_app.models import ModelPrice

PER = Decimal(1_000_000)
PATTERN_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class Price:
    input_price: Decimal
    output_price: Decimal
    currency: str

    def cost(self, *, input_tokens: int, output_tokens: int) -> Decimal:
        return (input_tokens * self.input_price + output_tokens * self.output_price) / PER


def price_for(model: str) -> Price | None:
    """The price of ``model``: its own row, else the longest pattern that matches it, else
    None. One query; the table holds a row per model a deployment uses."""
    rows = list(ModelPrice.objects.all())
    exact = [row for row in rows if row.model == model]
    patterns = [
        row for row in rows if PATTERN_CHARACTERS & set(row.model) and fnmatchcase(model, row.model)
    ]
    chosen = exact or sorted(patterns, key=lambda row: len(row.model), reverse=True)
    if not chosen:
        return None
    row = chosen[0]
    return Price(input_price=row.input_price, output_price=row.output_price, currency=row.currency)
