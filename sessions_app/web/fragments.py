"""HTML the sockets send besides the timeline's: a session's row of the list, its item of the
chat page's sidebar and its title, rendered through the same partials as the pages that show
them."""

from django.template.loader import render_to_string

from agentproj.vocabulary import PAGE_LIMITS, SESSION_STATUS_LABELS
from sessions_app.core import selectors
from sessions_app.models import AgentSession


def session_row(session: AgentSession) -> dict:
    """What the list's row and the sidebar's item show of a session from
    ``selectors.sessions_by_activity``."""
    status = selectors.session_status_of_turn_status(session.active_turn_status)
    preview = " ".join((session.latest_message or "").split())
    return {
        "session": session,
        "status": status,
        "label": SESSION_STATUS_LABELS[status],
        # A first message that named the session says nothing more below its title.
        "preview": "" if preview == session.title else preview,
    }


def session_fragments(user, session_id) -> dict[str, str] | None:
    """A session's row of the list (``html``) and its item of the sidebar (``item``), as the
    pages render them; None when the user has no such session (any more). The row's forms get
    their CSRF token from the page it lands in; the item is marked current by the page."""
    session = selectors.sessions_by_activity(user).filter(pk=session_id).first()
    if session is None:
        return None
    row = session_row(session)
    return {
        "html": render_to_string("sessions/_session_row.html", {"row": row, "limits": PAGE_LIMITS}),
        "item": render_to_string("sessions/_sidebar_item.html", {"row": row}),
    }


def session_title_html(name: str) -> str:
    return render_to_string("sessions/_session_title.html", {"name": name})
