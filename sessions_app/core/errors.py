"""What the core's services refuse, as ``{"code", "detail"}`` answers (``agentproj.api_errors``)."""

import math
from datetime import UTC, datetime

from django.utils import timezone

from agentproj.errors import ServiceError


class SessionBusy(ServiceError):
    code = "session_busy"
    detail = "A turn is already active in this session."


class TooManyActiveTurns(ServiceError):
    code = "too_many_active_turns"
    detail = (
        "Too many of your turns are active at once. Wait for one to end, or stop one, "
        "and send again."
    )


class NoActiveTurn(ServiceError):
    code = "no_active_turn"
    detail = "This session has no active turn to cancel."


class NotLastTurn(ServiceError):
    code = "not_last_turn"
    detail = "Only the session's last turn can be regenerated."


class IllegalTransition(ServiceError):
    code = "illegal_transition"
    detail = "The turn cannot make that change from its current status."


class LeaseLost(ServiceError):
    """The caller's lease token is not the turn's current one: another owner took over."""

    code = "lease_lost"
    detail = "This worker no longer owns the turn."


class BudgetExceeded(ServiceError):
    """The user has used up a budget of theirs (``core.budgets``) until ``resets_at``."""

    code = "budget_exceeded"

    def __init__(self, *, resets_at: datetime):
        super().__init__(resets_at)
        self.resets_at = resets_at
        local = timezone.localtime(resets_at)
        self.detail = (
            "You have used up your usage budget. You can send messages again from "
            f"{local:%Y-%m-%d %H:%M} {local.tzname()}."
        )

    def extra(self) -> dict:
        return {"resets_at": self.resets_at.astimezone(UTC).isoformat().replace("+00:00", "Z")}

    def retry_after(self) -> int:
        return max(0, math.ceil((self.resets_at - timezone.now()).total_seconds()))
