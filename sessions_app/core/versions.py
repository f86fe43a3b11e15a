"""Versions of a turn: Regenerate answers the last message again as a new version of its turn,
Edit answers the message as the user changed it, in the same place, and the user picks which
version is shown. The page draws the others hidden, one click away, and the model's transcript
leaves them out (``runtime.history``).

A group of versions is named by its first turn (``Turn.version_of`` of the others); exactly one
of them is ``shown``, which the database enforces. Each change writes a ``version_shown`` event
with the group's versions, oldest first, and the shown one, so that open pages follow."""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from agentproj import tracing
from agentproj.vocabulary import EventKind
from sessions_app.core import budgets, events
from sessions_app.core.errors import NotLastTurn, SessionBusy, TooManyActiveTurns
from sessions_app.core.lifecycle import line_of, lock_owner
from sessions_app.core.locks import lock_session_with_agent
from sessions_app.core.transitions import S, deliver_on_commit, status_data
from sessions_app.models import AgentSession, Turn


def _group(turn: Turn):
    """The versions of ``turn``'s group, oldest first."""
    first = turn.version_of_id or turn.pk
    return Turn.objects.filter(Q(pk=first) | Q(version_of_id=first)).order_by("index")


def _show(session: AgentSession, turn: Turn) -> None:
    """Make ``turn`` its group's shown version and tell the pages. The others are hidden first:
    the constraint allows one shown version at every moment."""
    group = _group(turn)
    group.exclude(pk=turn.pk).update(shown=False)
    Turn.objects.filter(pk=turn.pk).update(shown=True)
    turn.shown = True
    events.append(
        session=session,
        turn=turn,
        kind=EventKind.VERSION_SHOWN,
        data={"versions": list(group.values_list("pk", flat=True)), "shown": turn.pk},
    )


def _top_level_turn(session: AgentSession, turn_id: int) -> Turn:
    return Turn.objects.select_for_update().get(session=session, pk=turn_id, parent__isnull=True)


def turn_regenerate(*, session_id, owner, turn_id: int, message: str | None = None) -> Turn:
    """Answer the message of ``turn_id`` again, as a new version of that turn, and show it;
    with ``message``, the message as the user edited it instead.

    Only the session's last turn (any version of it) once it has ended: completed, stopped or
    failed. ``BudgetExceeded`` for an owner over budget, ``SessionBusy`` while a turn is active
    or waiting in line, ``NotLastTurn`` for an earlier turn, ``Turn.DoesNotExist`` for no
    top-level turn of the owner's session (``AgentSession.DoesNotExist`` for no such session)."""
    try:
        with transaction.atomic():
            session = lock_session_with_agent(session_id, owner_id=owner.pk)
            lock_owner(session.owner_id)
            budgets.budget_check(user_id=session.owner_id)
            turn = _top_level_turn(session, turn_id)
            line = line_of(session)
            if line.active or line.waiting:
                raise SessionBusy()
            last = session.turns.filter(parent__isnull=True, shown=True).order_by("-index").first()
            first = turn.version_of_id or turn.pk
            if last is None or (last.version_of_id or last.pk) != first:
                raise NotLastTurn()
            if line.owner_active >= settings.MAX_ACTIVE_TURNS_PER_USER:
                raise TooManyActiveTurns()
            _group(turn).update(shown=False)
            version = Turn.objects.create(
                session=session,
                index=line.next_index,
                user_message=turn.user_message if message is None else message,
                status=S.QUEUED,
                version_of_id=first,
                agent=session.agent,
                agent_snapshot=session.agent.snapshot(),
                enqueued_at=timezone.now(),
                traceparent=tracing.current_traceparent(),
            )
            events.append_many(
                session=session,
                turn=version,
                entries=[
                    (EventKind.USER_MESSAGE, {"text": version.user_message}),
                    (EventKind.STATUS, status_data(version)),
                ],
            )
            _show(session, version)
            deliver_on_commit(version)
            return version
    except IntegrityError as exc:
        # The partial unique constraint is the last word when a message races the regenerate.
        raise SessionBusy() from exc


def turn_version_show(*, session_id, owner, turn_id: int) -> Turn:
    """Show ``turn_id`` instead of the other versions of its turn. Refused with ``SessionBusy``
    while a turn of the session is active or waiting in line: the transcript of a turn that
    runs must not change under it. Showing the shown version changes nothing."""
    with transaction.atomic():
        session = lock_session_with_agent(session_id, owner_id=owner.pk)
        turn = _top_level_turn(session, turn_id)
        line = line_of(session)
        if line.active or line.waiting:
            raise SessionBusy()
        if not turn.shown:
            _show(session, turn)
        return turn
