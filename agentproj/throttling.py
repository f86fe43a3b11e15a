"""Per-user API rates (DESIGN.md section 9): ``API_THROTTLE_RATES`` names one rate per action.

Beyond it, DRF raises ``Throttled``, which the API answers as ``429 {"code": "throttled"}`` with a
``Retry-After`` header (``agentproj.api_errors``); the chat page already explains that code.
"""

from django.conf import settings
from rest_framework.throttling import UserRateThrottle


class ActionRateThrottle(UserRateThrottle):
    """Counts one action per user. The rate is read at request time, not import time, so a
    changed setting (a test's, or an operator's in a long-lived process) takes effect."""

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(self.scope)


class SendThrottle(ActionRateThrottle):
    scope = "send"


class CancelThrottle(ActionRateThrottle):
    scope = "cancel"


class DecideThrottle(ActionRateThrottle):
    scope = "decide"
