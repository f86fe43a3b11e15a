"""Approval requests in every status, made the way users and approvers make them, for browser
tests of the admin approval queue. The ``server`` fixture's worker and demo model run the turns."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import connections
from django.utils import timezone

from agentproj.vocabulary import TurnStatus
from approvals_app import services as approval_services
from approvals_app.models import ApprovalRequest, ApprovalStatus
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Turn
from tests.conftest import wait_for

# Bounds a broken test's wait for the server's worker; never a claim about speed.
WORKER_TIMEOUT = 90


def in_thread(call: Callable[[], Any]) -> Any:
    """Playwright's sync API runs an event loop in the test's thread; services publish with
    async_to_sync, which needs a thread without one (as in a web request or a worker)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: _closing_connections(call)).result(timeout=30)


def _closing_connections(call: Callable[[], Any]) -> Any:
    try:
        return call()
    finally:
        connections.close_all()


def ask_for_email(user) -> ApprovalRequest:
    """A new session of ``user`` whose turn waits for approval of a ``send_email`` call."""
    session = in_thread(lambda: sessions.session_create(owner=user, title="Email Bob"))
    turn = in_thread(
        lambda: lifecycle.turn_start(
            session=session, message="send an email to bob@example.com saying hi", actor=user
        )
    )
    wait_for(
        lambda: Turn.objects.get(pk=turn.pk).status == TurnStatus.WAITING_FOR_APPROVAL,
        timeout=WORKER_TIMEOUT,
    )
    return turn.approval_requests.get()


def requests_in_every_status(user, approver) -> dict[str, ApprovalRequest]:
    """One approval request in each status, keyed by status: approved and rejected by
    ``approver``, cancelled by ``user``'s stop, expired, and one still pending."""
    made = {status: ask_for_email(user) for status in ApprovalStatus.values}
    for status, approve in ((ApprovalStatus.APPROVED, True), (ApprovalStatus.REJECTED, False)):
        in_thread(
            partial(
                approval_services.approval_decide,
                approval_id=made[status].pk,
                actor=approver,
                approve=approve,
                reason="checked",
            )
        )
    cancelled = made[ApprovalStatus.CANCELLED]
    in_thread(lambda: lifecycle.turn_request_cancel(session=cancelled.turn.session, actor=user))
    # Waiting a day for the timeout is not an option: the request's deadline moves to the past.
    ApprovalRequest.objects.filter(pk=made[ApprovalStatus.EXPIRED].pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    in_thread(approval_services.approvals_expire)
    for status, approval in made.items():
        approval.refresh_from_db()
        assert approval.status == status
    return made
