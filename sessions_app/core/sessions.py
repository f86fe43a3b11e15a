"""Sessions: create, rename, delete; and which agent profile new sessions get."""

from django.db import transaction

from agentproj.validators import one_line_text
from agentproj.vocabulary import TITLE_MAX_LENGTH, StopReason
from sessions_app.core import broadcast, hooks
from sessions_app.core.locks import lock_session
from sessions_app.core.selectors import agent_default
from sessions_app.core.selectors import session_active_turn as active_turn
from sessions_app.core.transitions import S, cancel_locked, finalize_locked
from sessions_app.models import Agent, AgentSession, Turn


def _check_title(title: str) -> None:
    """Refuse (``ValidationError``) a title that is not one line of text a person may read. The
    API, the pages and the admin check it first, as the model field does; this catches a caller
    that did not: a title reaches every approver's e-mail about the session."""
    if title:
        one_line_text(title)


def session_create(*, owner, title: str = "", agent: Agent | None = None) -> AgentSession:
    _check_title(title)
    with transaction.atomic():
        session = AgentSession.objects.create(
            owner=owner, title=title.strip()[:TITLE_MAX_LENGTH], agent=agent or agent_default()
        )
        broadcast.session_created_on_commit(session)
    return session


def session_rename(*, session: AgentSession, title: str) -> AgentSession:
    """Give the session a new title (blank: it is named by its id until its next message)."""
    _check_title(title)
    with transaction.atomic():
        locked = lock_session(session.pk)
        locked.title = title.strip()[:TITLE_MAX_LENGTH]
        locked.save(update_fields=["title", "updated_at"])
        broadcast.session_renamed_on_commit(locked)
        return locked


def session_delete(*, session: AgentSession, actor) -> None:
    """Delete the session with its turns, timeline, approval requests and grants.

    Its active turn is stopped first, as by Stop: one interrupt notice, its pending approval
    requests cancelled and their approvers told, its worker signalled. A running turn is
    finalized here rather than by its worker, which would otherwise write the notice after the
    rows are gone; the worker's later writes find no lease (``LeaseLost``) and it lets the turn
    go. Turns waiting behind it end stopped too. All of it happens under the session's lock in
    one transaction, so no message can start a turn in between, and open pages get the
    stop's events before they are told that the session is gone.
    """
    with transaction.atomic():
        locked = lock_session(session.pk)
        # Told now, while the requests can still be read: the notices go out after the rows
        # are deleted.
        hooks.approvals().requests_withdraw(locked)
        current = active_turn(locked)
        if current is not None:
            current = Turn.objects.select_for_update().get(pk=current.pk)
            cancel_locked(
                locked, current, actor=actor, reason=StopReason.USER_CANCEL, promote_next=False
            )
            if current.status == S.STOPPING:
                finalize_locked(locked, current, status=S.STOPPED, promote_next=False)
        waiting = locked.turns.filter(parent__isnull=True, status=S.PENDING).order_by("index")
        for turn_id in waiting.values_list("pk", flat=True):
            turn = Turn.objects.select_for_update().get(pk=turn_id)
            finalize_locked(
                locked,
                turn,
                status=S.STOPPED,
                stop_reason=StopReason.USER_CANCEL,
                actor=actor,
                promote_next=False,
            )
        broadcast.session_deleted_on_commit(locked)
        locked.delete()


def agent_make_default(*, agent_id: int) -> None:
    """Make a profile the one sessions get when created without a choice. There is one default
    (a partial unique constraint): the previous one is unmarked first."""
    with transaction.atomic():
        Agent.objects.filter(is_default=True).exclude(pk=agent_id).update(is_default=False)
        Agent.objects.filter(pk=agent_id).update(is_default=True)
