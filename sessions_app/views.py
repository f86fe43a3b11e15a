"""Server-rendered pages. They render the timeline so far; the page script goes on live."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from approvals_app.services import can_decide

from . import selectors, services


@login_required
@require_http_methods(["GET", "POST"])
def session_list(request):
    if request.method == "POST":
        session = services.session_create(owner=request.user, title=request.POST.get("title", ""))
        return redirect("session-detail", session_id=session.pk)
    sessions = [
        (session, selectors.session_status(selectors.session_active_turn(session)))
        for session in selectors.sessions_of(request.user)
    ]
    return render(request, "sessions/list.html", {"sessions": sessions})


@login_required
def session_detail(request, session_id):
    session = get_object_or_404(selectors.sessions_of(request.user), pk=session_id)
    active = selectors.session_active_turn(session)
    return render(
        request,
        "sessions/detail.html",
        {
            "session": session,
            "active_turn": active,
            "session_status": selectors.session_status(active),
            "can_decide": can_decide(request.user),
        },
    )
