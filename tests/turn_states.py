"""Put a turn into any status through the real services, without a model or a worker.

The foundation tests use these to start from a known status; every step is the same service
call a worker, a user or an approver makes.
"""

import json
import threading
from collections.abc import Callable
from typing import Any

from django.db import connections

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalRequest
from sessions_app.core import leases, lifecycle, sessions
from sessions_app.models import AgentSession, Turn

EMAIL_CALL = {
    "id": "call_1",
    "name": "send_email",
    "arguments": {"to": "ops@example.com", "subject": "Report", "body": "All good."},
}


def new_session(owner) -> AgentSession:
    return sessions.session_create(owner=owner, title="foundation")


def queued_turn(owner, session: AgentSession | None = None, message: str = "hello") -> Turn:
    session = session or new_session(owner)
    return lifecycle.turn_start(session=session, message=message, actor=owner)


TEST_WORKER = "test-worker"


def running_turn(owner, session: AgentSession | None = None) -> tuple[Turn, Any]:
    """A running turn and the lease token its (imaginary) worker holds."""
    turn = queued_turn(owner, session)
    lease = leases.turn_take_lease(turn_id=turn.pk, worker_id=TEST_WORKER)
    assert lease is not None
    turn.refresh_from_db()
    return turn, lease


def waiting_turn(
    owner, session: AgentSession | None = None, **needs: Any
) -> tuple[Turn, ApprovalRequest]:
    """A turn parked on a ``send_email`` call, and its pending approval request; ``needs`` are
    the approval's requirements (``approvals_needed``, ``allow_self_approval``)."""
    turn, lease = running_turn(owner, session)
    parked = lifecycle.turn_park_for_approval(
        turn_id=turn.pk,
        lease_token=lease,
        checkpoint={"messages": [{"role": "user", "content": turn.user_message}]},
        calls=[{**EMAIL_CALL, **needs}],
    )
    assert parked
    turn.refresh_from_db()
    return turn, turn.approval_requests.get()


def stopping_turn(owner, session: AgentSession | None = None) -> tuple[Turn, Any]:
    turn, lease = running_turn(owner, session)
    lifecycle.turn_request_cancel(session=turn.session, actor=owner)
    turn.refresh_from_db()
    return turn, lease


def pending_turn(owner) -> tuple[Turn, Turn]:
    """A turn waiting behind the session's queued turn (``on_busy=enqueue``): (active, pending)."""
    active = queued_turn(owner)
    pending = lifecycle.turn_start(
        session=active.session, message="after that", actor=owner, on_busy="enqueue"
    )
    return active, pending


def turn_in(status: str, owner) -> Turn:
    """A top-level turn in ``status``, reached the way the application reaches it."""
    if status == TurnStatus.PENDING:
        return pending_turn(owner)[1]
    if status == TurnStatus.QUEUED:
        return queued_turn(owner)
    if status == TurnStatus.RUNNING:
        return running_turn(owner)[0]
    if status == TurnStatus.WAITING_FOR_APPROVAL:
        return waiting_turn(owner)[0]
    if status == TurnStatus.STOPPING:
        return stopping_turn(owner)[0]
    if status == TurnStatus.STOPPED:
        turn = queued_turn(owner)
        lifecycle.turn_request_cancel(session=turn.session, actor=owner)
    elif status in (TurnStatus.COMPLETED, TurnStatus.FAILED):
        turn, lease = running_turn(owner)
        lifecycle.turn_finalize(
            turn_id=turn.pk,
            status=status,
            lease_token=lease,
            error_code="llm_error" if status == TurnStatus.FAILED else "",
        )
    else:
        raise ValueError(status)
    turn.refresh_from_db()
    return turn


def interrupts(turn: Turn) -> int:
    return turn.events.filter(kind=EventKind.INTERRUPT).count()


def race(*calls: Callable[[], Any], timeout: float = 30.0) -> list[tuple[str, Any]]:
    """Run ``calls`` in threads released together by a barrier, each in its own transaction.

    Returns one ``("ok", value)`` or ``("error", exception)`` per call, in call order.
    """
    barrier = threading.Barrier(len(calls))
    outcomes: list[tuple[str, Any] | None] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout)
            outcomes[i] = ("ok", call())
        except Exception as exc:
            outcomes[i] = ("error", exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c), daemon=True) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a racing call did not return"
    return outcomes  # type: ignore[return-value]


EXCEPTION_MARKERS = (
    "Traceback",
    'File "',
    "Exception",
    "Error:",
    "IntegrityError",
    "DoesNotExist",
    "JSON parse error",
    "line 1 column",
    "sessions_app.",
    "approvals_app.",
    "django.",
    "SELECT ",
    "UPDATE ",
    "INSERT ",
)


def assert_no_exception_text(response) -> None:
    """No traceback, exception name, module path or SQL reaches an API client."""
    body = response.content.decode()
    for marker in EXCEPTION_MARKERS:
        assert marker not in body, f"{marker!r} in response: {body[:500]}"


def assert_error(response, http_status: int, code: str | None = None) -> dict:
    assert response.status_code == http_status, (response.status_code, response.content[:500])
    body = json.loads(response.content)
    assert set(body) >= {"code", "detail"}, body
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["code"] == code, body
    assert_no_exception_text(response)
    return body
