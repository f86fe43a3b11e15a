"""Handing turns to django-q2. The task is named by its path, so that services, which enqueue
turns, need not import the tasks module, which calls services."""

from django_q.tasks import async_task

# django-q2's time limit must never kill a process that hosts turns.
NO_TIME_LIMIT = -1


def turn_enqueue(turn_id: int) -> None:
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
