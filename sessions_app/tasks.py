"""django-q2 tasks. Like views, they take ids and call services or the runtime.

Delivery is at least once: running a turn takes its lease first, so a task delivered twice
runs the turn once.
"""

from django_q.tasks import async_task

from approvals_app.services import approvals_expire

from . import services
from .runtime import worker

# django-q2's time limit must never kill a process that hosts turns.
NO_TIME_LIMIT = -1


def enqueue(turn_id: int) -> None:
    """Hand a queued turn to the broker: a first run and a resume are the same task, since a
    turn always continues from its checkpoint."""
    async_task(
        "sessions_app.tasks.run_turn",
        turn_id,
        group="turns",
        # A delivery's result says nothing the turn row does not: saving it would add a write
        # per turn to the busiest table of the embedded SQLite database. Failures are kept.
        q_options={"task_name": f"turn-{turn_id}", "timeout": NO_TIME_LIMIT, "save": False},
    )


def run_turn(turn_id: int) -> str:
    outcome = worker.deliver(turn_id)
    if outcome == worker.FULL:
        enqueue(turn_id)
        worker.wait_for_slot()
    elif outcome == worker.REFUSED:
        # This process was told to shut down and has drained: the turn is still queued, so
        # hand it to another process, and leave now, between tasks, where leaving is safe.
        enqueue(turn_id)
        raise SystemExit(0)
    return outcome


def housekeeping() -> str:
    """Scheduled: reap turns whose worker died, hand lost deliveries over again, and expire
    overdue approval requests."""
    reaped = services.turns_reap_expired()
    redelivered = services.turns_redeliver()
    expired = approvals_expire()
    return f"reaped {reaped}, redelivered {redelivered}, expired {expired}"
