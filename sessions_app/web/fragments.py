"""HTML the sockets send besides the timeline's: a session's row of the list and its title,
rendered through the same partials as the pages that show them."""

from django.template.loader import render_to_string

from agentproj.vocabulary import PAGE_LIMITS, SESSION_STATUS_LABELS
from sessions_app.core import selectors
from sessions_app.models import AgentSession


def session_row(session: AgentSession) -> dict:
    """A row of the list, for a session from ``selectors.sessions_with_active_turn``."""
    status = selectors.session_status(selectors.active_turn_of(session))
    return {"session": session, "status": status, "label": SESSION_STATUS_LABELS[status]}


def session_row_html(user, session_id) -> str | None:
    """A session's row of the list as the list page renders it; None when the user has no such
    session (any more). The row's forms get their CSRF token from the page it lands in."""
    session = selectors.sessions_with_active_turn(user).filter(pk=session_id).first()
    if session is None:
        return None
    return render_to_string(
        "sessions/_session_row.html", {"row": session_row(session), "limits": PAGE_LIMITS}
    )


def session_title_html(name: str) -> str:
    return render_to_string("sessions/_session_title.html", {"name": name})
