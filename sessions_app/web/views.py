"""Server-rendered pages. The chat page draws its whole timeline and the session's grants
(``timeline.render``); its script then resumes the websocket after the last event drawn and
places the fragments the socket renders through the same partials."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from agentproj.throttling import EventsThrottle, SessionChangeThrottle, page_throttle
from approvals_app import selectors as approval_selectors
from approvals_app.services import can_decide
from sessions_app.core import selectors, sessions
from sessions_app.models import AgentSession
from sessions_app.web.fragments import session_row
from sessions_app.web.timeline import render as timeline

# Sessions in the chat page's sidebar: the most recently active, enough for a day's work; the
# list page (its search, its pages) has every one.
SIDEBAR_SESSIONS = 50


class SessionForm(forms.ModelForm):
    """The title's rules are the model field's, shared with the API and the admin."""

    class Meta:
        model = AgentSession
        fields = ["title", "agent"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The rules judge the title as sent, as the API does; the service strips what it stores.
        self.fields["title"].strip = False
        agent = self.fields["agent"]
        agent.queryset = selectors.agents_to_pick()
        # Not chosen (as by the API), the session gets the default profile, preselected here.
        agent.required = False
        agent.empty_label = None
        default = selectors.agent_default()
        agent.initial = default.pk if default else None
        agent.widget.attrs.update({"aria-label": "Agent"})


class RenameForm(forms.ModelForm):
    class Meta:
        model = AgentSession
        fields = ["title"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["title"].strip = False


def _next_url(request) -> str:
    """Where a rename goes back to: the page it was made from, on this site; else the list."""
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("session-list")


@login_required
@require_http_methods(["GET", "POST"])
@page_throttle(SessionChangeThrottle, methods=("POST",))
def session_list(request):
    """The user's sessions, the most recently active first, ``SESSIONS_PER_PAGE`` a page, in the
    same few queries whatever their number; POST creates one (the sidebar's New chat too)."""
    form = SessionForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        session = sessions.session_create(
            owner=request.user, title=form.cleaned_data["title"], agent=form.cleaned_data["agent"]
        )
        return redirect("session-detail", session_id=session.pk)
    query = request.GET.get("q", "").strip()
    owned = selectors.sessions_by_activity(request.user)
    if query:
        owned = owned.filter(title__icontains=query)
    page = Paginator(owned, selectors.SESSIONS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "sessions/list.html",
        {
            "rows": [session_row(session) for session in page],
            "page": page,
            "form": form,
            "query": query,
        },
        status=400 if form.is_bound else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
@page_throttle(SessionChangeThrottle, methods=("POST",))
def session_rename(request, session_id):
    session = get_object_or_404(selectors.sessions_of(request.user), pk=session_id)
    # Unbound to the row: the form judges the title alone, and a refused one changes nothing.
    form = RenameForm(
        request.POST if request.method == "POST" else None, initial={"title": session.title}
    )
    if form.is_valid():
        sessions.session_rename(session=session, title=form.cleaned_data["title"])
        return redirect(_next_url(request))
    return render(
        request,
        "sessions/rename.html",
        {"session": session, "form": form, "next": _next_url(request)},
        status=400 if form.is_bound else 200,
    )


def told_deleted(request, session) -> None:
    """The notice the page after a deletion shows: what was deleted."""
    messages.success(request, f"Deleted “{session}”.")


@login_required
@require_http_methods(["GET", "POST"])
@page_throttle(SessionChangeThrottle, methods=("POST",))
def session_delete(request, session_id):
    """GET asks for confirmation, POST deletes: a step that works without JavaScript."""
    session = get_object_or_404(selectors.sessions_of(request.user), pk=session_id)
    if request.method == "POST":
        sessions.session_delete(session=session, actor=request.user)
        told_deleted(request, session)
        return redirect("session-list")
    return render(
        request,
        "sessions/delete.html",
        {"session": session, "active_turn": selectors.session_active_turn(session)},
    )


def _sidebar(user) -> dict:
    """The chat page's sidebar: the user's ``SIDEBAR_SESSIONS`` most recently active sessions
    (one query), and whether there are more, which the list page shows."""
    recent = list(selectors.sessions_by_activity(user)[: SIDEBAR_SESSIONS + 1])
    return {
        "rows": [session_row(session) for session in recent[:SIDEBAR_SESSIONS]],
        "more": len(recent) > SIDEBAR_SESSIONS,
        "limit": SIDEBAR_SESSIONS,
    }


@login_required
@page_throttle(EventsThrottle, methods=("GET",))
def session_detail(request, session_id):
    """The user's own session; or, read-only, another's whose approval request the user may
    decide or has decided: the context behind the call (no composer, no Stop, no socket; the
    decision is the inbox's). Anyone else gets the 404 of a session that does not exist."""
    session = selectors.sessions_of(request.user).filter(pk=session_id).first()
    behind = None
    if session is None:
        behind = _approval_behind(request.user, session_id)
        if behind is None:
            raise Http404
        session = behind.turn.session
    events = selectors.events_after(session.pk, 0, limit=None)
    return render(
        request,
        "sessions/detail.html",
        {
            "session": session,
            "read_only_for": behind,
            "timeline": timeline.page(
                events,
                session_id=session.pk,
                can_decide=can_decide(request.user) and behind is None,
            ),
            "message_max_chars": settings.AGENT_MAX_MESSAGE_CHARS,
            "sidebar": _sidebar(request.user),
        },
    )


def _approval_behind(user, session_id):
    if not can_decide(user):
        return None
    return approval_selectors.approval_behind_session(user, session_id)
