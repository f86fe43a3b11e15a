"""JSON as every entry point reads it: bounded nesting and finite numbers.

Python's parser recurses once per level: a 2 KB body of a thousand nested brackets ends in a
``RecursionError`` wherever it is read (an API body, an admin form, a model's tool arguments),
and a deep value costs every later reader the same. ``NaN``, ``Infinity`` and numbers too large
for a float (``1e999``) are not JSON at all for PostgreSQL's ``jsonb`` or for most clients.
Every reader of untrusted JSON goes through ``loads`` (or ``check`` for a value parsed
elsewhere), so one limit holds everywhere.
"""

import json
import math
from typing import Any

# Deeper than any tool's arguments or request body needs, far below Python's recursion limit.
MAX_DEPTH = 32


class InvalidJson(ValueError):
    """Not JSON, nested deeper than ``MAX_DEPTH``, or holding a number that is not finite."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


TOO_DEEP = f"The JSON is nested more than {MAX_DEPTH} levels deep."
NOT_FINITE = "The JSON holds a number that is not finite (NaN, Infinity or out of range)."


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InvalidJson(NOT_FINITE)
    return number


def _readable_int(text: str) -> int:
    # Python refuses to read an integer of more than 4,300 digits (a plain ValueError).
    try:
        return int(text)
    except ValueError:
        raise InvalidJson(NOT_FINITE) from None


def _no_constant(name: str):
    raise InvalidJson(NOT_FINITE)


def loads(raw: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that refuses, with ``InvalidJson``, what this module's docstring names."""
    try:
        value = json.loads(
            raw, parse_float=_finite_float, parse_int=_readable_int, parse_constant=_no_constant
        )
    except RecursionError:
        raise InvalidJson(TOO_DEEP) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidJson("The body is not valid JSON.") from None
    check(value, max_depth=max_depth)
    return value


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse (``InvalidJson``) a parsed value nested deeper than ``max_depth`` or holding a
    float that is not finite. Iterative: the value may be deeper than Python recurses."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise InvalidJson(NOT_FINITE)
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise InvalidJson(TOO_DEEP)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
