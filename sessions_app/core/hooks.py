"""What the core asks of the approvals app, without importing it.

A turn's move sometimes has to touch approval requests in the same transaction: parking it opens
them, stopping it cancels those still pending, deleting its session withdraws them first. The
core is the lower layer, so it declares what it needs here and the approvals app registers how
(``approvals_app.apps``, at ``AppConfig.ready``): imports point one way, and the work still
happens under the core's locks, in its transaction.
"""

from datetime import datetime
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured


class ApprovalHooks(Protocol):
    def requests_open(
        self, session, turn, *, calls: list[dict[str, Any]], expires_at: datetime
    ) -> int:
        """One request per call of a turn being parked (``turn_park_for_approval``); how many
        wait for a decision (the others nobody could approve, rejected at once)."""

    def requests_cancel(self, turn) -> int:
        """End the stopped turn's pending requests as cancelled, and tell their approvers."""

    def requests_withdraw(self, session) -> int:
        """Cancel the pending requests of a session about to be deleted."""


_approvals: ApprovalHooks | None = None


def register_approvals(hooks: ApprovalHooks) -> None:
    global _approvals
    _approvals = hooks


def approvals() -> ApprovalHooks:
    if _approvals is None:
        raise ImproperlyConfigured("approvals_app is not installed: no approval hooks registered")
    return _approvals
