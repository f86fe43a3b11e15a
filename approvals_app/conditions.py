"""The conditions a policy rule may put on a tool call's arguments: a few comparisons, no code.

A condition is an argument name, an operator and a text value (a list is one item a line).
"""

import re
from typing import Any

from django.db import models


class Operator(models.TextChoices):
    EQUALS = "equals"
    ONE_OF = "one_of", "one of (one value a line)"
    REGEX = "regex", "matches the regular expression (anywhere; anchor with ^ and $)"
    EMAIL_DOMAIN_IN = "email_domain_in", "e-mail domain in (one domain a line)"
    NUMBER_ABOVE = "number_above", "number above"


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _as_text(argument: Any) -> str:
    return argument if isinstance(argument, str) else repr(argument)


def condition_problem(field: str, operator: str, value: str) -> str:
    """Why a condition cannot be used, or "" when it can."""
    if not field and not operator:
        return ""
    if not field or not operator:
        return "A condition needs both an argument name and an operator."
    if operator == Operator.REGEX:
        try:
            re.compile(value)
        except re.error as exc:
            return f"The regular expression is not valid: {exc}."
    if operator == Operator.NUMBER_ABOVE:
        try:
            float(value)
        except ValueError:
            return "The value must be a number."
    if operator in (Operator.ONE_OF, Operator.EMAIL_DOMAIN_IN) and not _lines(value):
        return "Give at least one value, one a line."
    return ""


def matches(arguments: dict[str, Any], *, field: str, operator: str, value: str) -> bool:
    """Whether a call's arguments meet the condition; no condition matches every call, and a
    condition on an argument the call lacks matches none."""
    if not field:
        return True
    if field not in arguments:
        return False
    argument = arguments[field]
    if operator == Operator.EQUALS:
        return _as_text(argument) == value
    if operator == Operator.ONE_OF:
        return _as_text(argument) in _lines(value)
    if operator == Operator.REGEX:
        return isinstance(argument, str) and re.search(value, argument) is not None
    if operator == Operator.EMAIL_DOMAIN_IN:
        if not isinstance(argument, str) or "@" not in argument:
            return False
        domain = argument.rsplit("@", 1)[1].strip().lower()
        return domain in {line.lower() for line in _lines(value)}
    if operator == Operator.NUMBER_ABOVE:
        number = isinstance(argument, int | float) and not isinstance(argument, bool)
        return number and argument > float(value)
    raise ValueError(f"unknown operator {operator!r}")
