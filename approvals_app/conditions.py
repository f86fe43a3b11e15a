"""The conditions a policy rule may put on a tool call's arguments: a few comparisons, no code.

A condition is an argument name, an operator and a text value (a list is one item a line). It
compares canonical values: the arguments come from ``Tool.prepare``, and the rule's side is
read the same way (an e-mail domain as ``email_addresses`` normalises it; an address in an
``equals`` or ``one of`` list as the canonical address). A condition that cannot tell whether a
value meets it (the value is not of the kind it compares, or its pattern ran out of time) raises
``Undecided``; the policy then fails closed (``policies``).

Regular expressions run on the ``regex`` engine, matched against the whole value, with a time
limit (``POLICY_REGEX_TIMEOUT``) and with the GIL released while they match, so that a pattern
that backtracks without end neither lets a call through nor freezes the other turns of a worker.
"""

import json
import math
from typing import Any

import regex
from django.conf import settings
from django.db import models

from agentproj import email_addresses

# Longer values are not matched at all (they count as a pattern that ran out of time): the cost
# of a backtracking pattern grows with the input, and no argument a rule needs is this long.
REGEX_INPUT_LIMIT = 1000


class Operator(models.TextChoices):
    EQUALS = "equals"
    ONE_OF = "one_of", "one of (one value a line)"
    REGEX = "regex", "matches the regular expression (the whole value)"
    EMAIL_DOMAIN_IN = "email_domain_in", "e-mail domain in (one domain a line)"
    NUMBER_ABOVE = "number_above", "number above"


class Undecided(Exception):
    """The condition cannot tell whether the call meets it.

    ``fault`` says what an operator should know about the rule: its pattern ran out of time, or
    its value, saved without the admin's checks (``condition_problem``), does not read as a
    pattern, a number or a domain list. It is empty when the call's value is simply not of the
    kind the condition compares.
    """

    def __init__(self, fault: str = ""):
        super().__init__(fault)
        self.fault = fault


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _as_text(argument: Any) -> str:
    """A value as a rule's text compares with it: a string as it is, anything else as JSON."""
    if isinstance(argument, str):
        return argument
    return json.dumps(argument, sort_keys=True, ensure_ascii=False)


def _address(text: str) -> str | None:
    try:
        return email_addresses.canonical_address(text)
    except email_addresses.InvalidAddress:
        return None


def _same(argument: Any, expected: str) -> bool:
    """Whether a value equals a rule's text; two addresses are the same when their canonical
    forms are (``Ops@EXAMPLE.com`` in a rule is the ``Ops@example.com`` a call holds)."""
    text = _as_text(argument)
    if text == expected:
        return True
    canonical = _address(text) if isinstance(argument, str) else None
    return canonical is not None and canonical == _address(expected)


def normalised_domains(value: str) -> list[str]:
    """A rule's domain list, one canonical domain a line; ``InvalidAddress`` names the first
    line that is not a domain."""
    domains = []
    for line in _lines(value):
        try:
            domains.append(email_addresses.canonical_domain(line))
        except email_addresses.InvalidAddress:
            problem = f'"{line}" {email_addresses.DOMAIN_RULE}'
            raise email_addresses.InvalidAddress(problem) from None
    return domains


def condition_problem(field: str, operator: str, value: str) -> str:
    """Why a condition cannot be used, or "" when it can."""
    if not field and not operator:
        return ""
    if not field or not operator:
        return "A condition needs both an argument name and an operator."
    if operator == Operator.REGEX:
        try:
            regex.compile(value)
        except regex.error as exc:
            return f"The regular expression is not valid: {exc}."
    if operator == Operator.NUMBER_ABOVE:
        try:
            finite = math.isfinite(float(value))
        except ValueError:
            finite = False
        if not finite:
            return "The value must be a number."
    if operator in (Operator.ONE_OF, Operator.EMAIL_DOMAIN_IN) and not _lines(value):
        return "Give at least one value, one a line."
    if operator == Operator.EMAIL_DOMAIN_IN:
        try:
            normalised_domains(value)
        except email_addresses.InvalidAddress as exc:
            return f"{exc}."
    return ""


def matches(arguments: dict[str, Any], *, field: str, operator: str, value: str) -> bool:
    """Whether a call's arguments meet the condition; no condition matches every call, and a
    condition on an argument the call lacks matches none. ``Undecided`` when it cannot tell."""
    if not field:
        return True
    if field not in arguments:
        return False
    argument = arguments[field]
    if operator == Operator.EQUALS:
        return _same(argument, value)
    if operator == Operator.ONE_OF:
        return any(_same(argument, line) for line in _lines(value))
    if operator == Operator.REGEX:
        return _full_match(value, argument)
    if operator == Operator.EMAIL_DOMAIN_IN:
        return _domain_in(argument, value)
    if operator == Operator.NUMBER_ABOVE:
        return _above(argument, value)
    raise ValueError(f"unknown operator {operator!r}")


def _above(argument: Any, value: str) -> bool:
    if not isinstance(argument, int | float) or isinstance(argument, bool):
        raise Undecided()
    try:
        threshold = float(value)
    except ValueError:
        raise Undecided("its value is not a number") from None
    return argument > threshold


def _full_match(pattern: str, argument: Any) -> bool:
    if not isinstance(argument, str):
        raise Undecided()
    if len(argument) > REGEX_INPUT_LIMIT:
        raise Undecided(f"a value over {REGEX_INPUT_LIMIT} characters is not matched")
    try:
        found = regex.fullmatch(
            pattern, argument, timeout=settings.POLICY_REGEX_TIMEOUT, concurrent=True
        )
    except TimeoutError:
        raise Undecided(
            f"the pattern ran out of time ({settings.POLICY_REGEX_TIMEOUT} s) on a value"
        ) from None
    except regex.error:
        raise Undecided("its pattern is not a valid regular expression") from None
    return found is not None


def _domain_in(argument: Any, value: str) -> bool:
    """Whether the argument is one plain address whose domain is in the rule's list."""
    if not isinstance(argument, str) or (address := _address(argument)) is None:
        raise Undecided()
    try:
        domains = normalised_domains(value)
    except email_addresses.InvalidAddress as exc:
        raise Undecided(f"its domain list does not normalise: {exc}") from None
    return address.rpartition("@")[2] in domains
