"""django-q2 tasks. Like views, they take ids and call services or the runtime.

Delivery is at least once: running a turn takes its lease first, so a task delivered twice
runs the turn once.
"""

from django_q.tasks import async_task

from approvals_app.services import approvals_expire

from . import services
from .runtime import loop


def enqueue(turn_id: int, *, resume: bool) -> None:
    func = "sessions_app.tasks.resume_turn" if resume else "sessions_app.tasks.run_turn"
    async_task(func, turn_id, group="turns", q_options={"task_name": f"turn-{turn_id}"})


def run_turn(turn_id: int) -> str:
    return loop.execute(turn_id)


def resume_turn(turn_id: int) -> str:
    return loop.execute(turn_id)


def housekeeping() -> str:
    """Scheduled: reap turns whose worker died, hand lost deliveries over again, and expire
    overdue approval requests."""
    reaped = services.turns_reap_expired()
    redelivered = services.turns_redeliver()
    expired = approvals_expire()
    return f"reaped {reaped}, redelivered {redelivered}, expired {expired}"
