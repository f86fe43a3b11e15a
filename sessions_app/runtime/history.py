"""What a turn's model input needs of the session before it: the turns that had ended when it
first started, read from the timeline (``transcript`` builds the messages from them)."""

from typing import Any

from agentproj.vocabulary import TERMINAL_STATUSES, EventKind, TurnStatus
from sessions_app.models import TimelineEvent, Turn
from sessions_app.runtime.transcript import TRANSCRIPT_KINDS, PastTurn


def turn_history(turn: Turn) -> tuple[list[PastTurn], dict[str, Any]]:
    """What the transcript builder needs of the session before ``turn``: the top-level turns
    that had ended when ``turn`` first started, less the versions not shown, in the order they
    ended, and what the latest of them learned of the model's context window
    (``ContextWindow.learned``).

    Bounded by the ``seq`` of the turn's first start, not by turn index: a turn sent with
    ``on_busy=interrupt`` runs before turns sent earlier, and a resumed turn reads the same
    history as its first run, whatever ended in between."""
    events = TimelineEvent.objects.filter(session_id=turn.session_id, turn__parent__isnull=True)
    started = (
        events.filter(turn=turn, kind=EventKind.STATUS, data__status=TurnStatus.RUNNING)
        .order_by("seq")
        .values_list("seq", flat=True)
        .first()
    )
    earlier = events.exclude(turn=turn)
    if started is not None:
        earlier = earlier.filter(seq__lt=started)
    ended = list(
        earlier.filter(kind=EventKind.STATUS, data__status__in=TERMINAL_STATUSES)
        .order_by("seq")
        .values_list("turn_id", flat=True)
    )
    rows = {
        pk: (message, status)
        for pk, message, status in Turn.objects.filter(pk__in=ended, shown=True).values_list(
            "pk", "user_message", "status"
        )
    }
    # Of a turn's versions, the model sees the one the user chose (``core.versions``).
    ended = [pk for pk in ended if pk in rows]
    if not ended:
        return [], {}
    told: dict[int, list[tuple[str, dict[str, Any]]]] = {turn_id: [] for turn_id in ended}
    for turn_id, kind, data in (
        earlier.filter(kind__in=TRANSCRIPT_KINDS)
        .order_by("seq")
        .values_list("turn_id", "kind", "data")
    ):
        if turn_id in told:
            told[turn_id].append((kind, data))
    learned = dict(
        Turn.objects.filter(pk__in=ended, checkpoint__has_key="context").values_list(
            "pk", "checkpoint__context"
        )
    )
    latest = next((learned[pk] for pk in reversed(ended) if pk in learned), {})
    past = [PastTurn(user_message=rows[pk][0], status=rows[pk][1], events=told[pk]) for pk in ended]
    return past, latest
