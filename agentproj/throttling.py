"""Per-user rates (DESIGN.md section 9): ``API_THROTTLE_RATES`` names one rate per action.

Beyond it, DRF raises ``Throttled``, which the API answers as ``429 {"code": "throttled"}`` with a
``Retry-After`` header (``agentproj.api_errors``); the chat page already explains that code. The
pages that do the same actions count in the same place (``page_throttle``), and so does the
session socket's replay (``spend``): one budget per user and action, whichever way it is spent.
"""

from dataclasses import dataclass
from functools import wraps

from django.conf import settings
from django.shortcuts import render
from rest_framework.throttling import UserRateThrottle


class ActionRateThrottle(UserRateThrottle):
    """Counts one action per user. The rate is read at request time, not import time, so a
    changed setting (a test's, or an operator's in a long-lived process) takes effect. With
    ``methods``, only requests with those methods count (a view's GET may be free)."""

    methods: frozenset[str] | None = None

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        if self.methods is not None and request.method not in self.methods:
            return True
        return super().allow_request(request, view)


class SendThrottle(ActionRateThrottle):
    scope = "send"


class CancelThrottle(ActionRateThrottle):
    scope = "cancel"


class DecideThrottle(ActionRateThrottle):
    scope = "decide"


class SessionChangeThrottle(ActionRateThrottle):
    """Creating, renaming and deleting sessions; listing and reading them are not counted."""

    scope = "sessions"
    methods = frozenset({"POST", "PATCH", "DELETE"})


class EventsThrottle(ActionRateThrottle):
    scope = "events"


class ResumeThrottle(ActionRateThrottle):
    scope = "resume"


@dataclass(frozen=True)
class _Caller:
    """What a user rate reads of a request (its user), for an action that is no request."""

    user: object


def spend(throttle: ActionRateThrottle, user) -> float | None:
    """Count one action of ``user``, whatever the throttle's ``methods``; None when it is within
    the rate, else the seconds to wait."""
    if UserRateThrottle.allow_request(throttle, _Caller(user), None):
        return None
    return throttle.wait() or 1.0


def page_throttle(throttle_class: type[ActionRateThrottle], *, methods: tuple[str, ...]):
    """A page view's requests with ``methods`` count as ``throttle_class``'s action; beyond its
    rate the page answers 429 (``throttled.html``) with ``Retry-After``."""

    def decorate(view):
        @wraps(view)
        def counted(request, *args, **kwargs):
            if request.method in methods:
                wait = spend(throttle_class(), request.user)
                if wait is not None:
                    seconds = max(1, round(wait))
                    response = render(request, "throttled.html", {"seconds": seconds}, status=429)
                    response["Retry-After"] = str(seconds)
                    return response
            return view(request, *args, **kwargs)

        return counted

    return decorate
